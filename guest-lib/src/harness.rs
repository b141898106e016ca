//! The in-guest test harness: named cases, one console line each, and a final line
//! `N passed, M failed` that `pvmkit` reads.
//!
//! ```
//! use guest_lib::harness::Harness;
//!
//! let mut out = String::new();
//! let mut h = Harness::new(&mut out);
//! h.run("arithmetic", || {
//!     guest_lib::ensure_eq!(2 + 2, 4);
//!     Ok(())
//! });
//! h.finish();
//! assert_eq!(out, "test arithmetic ... ok\n1 passed, 0 failed\n");
//! ```

use alloc::string::String;
use core::fmt::Write;

/// What a case returns: `Err` carries the reason it failed.
pub type CaseResult = Result<(), String>;

/// Fails the current case with a message unless `cond` holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err($crate::__private::format!("{} ({}:{})", $crate::__private::format!($($msg)+), file!(), line!()));
        }
    };
}

/// Fails the current case unless the two values are equal.
#[macro_export]
macro_rules! ensure_eq {
    ($left:expr, $right:expr $(,)?) => {{
        let (left, right) = (&$left, &$right);
        if left != right {
            return Err($crate::__private::format!(
                "{} = {:x?}, expected {:x?} ({}:{})",
                stringify!($left),
                left,
                right,
                file!(),
                line!()
            ));
        }
    }};
}

/// Runs cases and counts outcomes.
pub struct Harness<W: Write> {
    out: W,
    passed: u32,
    failed: u32,
}

/// The final line's counts (its wording is abi's, which `pvmkit`'s verdict reads).
pub use pvmkit_abi::guest_console::Summary;

impl<W: Write> Harness<W> {
    /// A harness that reports to `out`.
    pub fn new(out: W) -> Self {
        Self { out, passed: 0, failed: 0 }
    }

    /// Runs one case and prints `test <name> ... ok` or `... FAILED: <reason>`. When
    /// the case itself printed to the console (a `println!`, a driver's log line), the
    /// verdict is printed again on a line of its own, `test <name> ... ok` whole, so
    /// that nothing reading the console finds it split.
    pub fn run(&mut self, name: &str, case: impl FnOnce() -> CaseResult) {
        let _ = write!(self.out, "test {name} ... ");
        let (before, _) = crate::console::output_mark();
        let result = case();
        let (after, at_line_start) = crate::console::output_mark();
        if after != before {
            let _ = write!(self.out, "{}test {name} ... ", if at_line_start { "" } else { "\n" });
        }
        match result {
            Ok(()) => {
                self.passed += 1;
                let _ = writeln!(self.out, "ok");
            }
            Err(reason) => {
                self.failed += 1;
                let _ = writeln!(self.out, "FAILED: {reason}");
            }
        }
    }

    /// Records a case that does not apply here; it counts neither way.
    pub fn skip(&mut self, name: &str, why: &str) {
        let _ = writeln!(self.out, "test {name} ... skipped: {why}");
    }

    /// Prints the final `N passed, M failed` line.
    pub fn finish(mut self) -> Summary {
        let summary = Summary { passed: self.passed, failed: self.failed };
        let _ = writeln!(self.out, "{summary}");
        summary
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    fn equal_case(a: u32, b: u32) -> CaseResult {
        ensure_eq!(a, b);
        Ok(())
    }

    #[test]
    fn prints_one_line_per_case_and_the_summary() {
        let mut out = String::new();
        let mut h = Harness::new(&mut out);
        h.run("good", || Ok(()));
        h.run("bad", || {
            ensure!(1 + 1 == 3, "arithmetic is {}", "hard");
            Ok(())
        });
        h.run("eq", || equal_case(3, 4));
        h.skip("elsewhere", "needs a hypervisor");
        assert_eq!(h.finish(), Summary { passed: 1, failed: 2 });
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "test good ... ok");
        assert!(
            lines[1].starts_with("test bad ... FAILED: arithmetic is hard (guest-lib/src/harness.rs:"),
            "{}",
            lines[1]
        );
        assert!(lines[2].starts_with("test eq ... FAILED: a = 3, expected 4"), "{}", lines[2]);
        assert_eq!(lines[3], "test elsewhere ... skipped: needs a hypervisor");
        assert_eq!(lines[4], "1 passed, 2 failed");
    }

    /// The console as a case prints to it, collected (each byte also counted, as the
    /// real console counts what it writes).
    struct Collected(std::rc::Rc<core::cell::RefCell<String>>);

    impl Write for Collected {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            self.0.borrow_mut().push_str(s);
            crate::console::Console.write_str(s)
        }
    }

    /// A case that prints splits its line; the verdict then comes again, whole, on a
    /// line of its own (after a newline if the case's text did not end with one).
    #[test]
    fn a_case_that_prints_gets_its_verdict_on_a_whole_line() {
        let console = std::rc::Rc::new(core::cell::RefCell::new(String::new()));
        let mut h = Harness::new(Collected(console.clone()));
        h.run("quiet", || Ok(()));
        h.run("noisy", || {
            let _ = Collected(console.clone()).write_str("[INFO] found a block device\n");
            Ok(())
        });
        h.run("unfinished", || {
            let _ = Collected(console.clone()).write_str("half a line");
            Err("no".into())
        });
        h.finish();
        let text = console.borrow().clone();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "test quiet ... ok",
                "test noisy ... [INFO] found a block device",
                "test noisy ... ok",
                "test unfinished ... half a line",
                "test unfinished ... FAILED: no",
                "2 passed, 1 failed",
            ]
        );
    }
}
