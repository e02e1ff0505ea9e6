# The seed's "Crash Recovery Handler" example (hook-specifications.md), as it is.
import pytest

class CrashRecoveryHandler:
    """Handle worker crashes and implement recovery strategies."""
    
    def __init__(self):
        self.crash_counts = {}
        self.max_retries = 3
    
    def pytest_handlecrashitem(self, crashitem, report, sched):
        """Handle crashed test items."""
        # Track crash frequency
        if crashitem not in self.crash_counts:
            self.crash_counts[crashitem] = 0
        
        self.crash_counts[crashitem] += 1
        
        # Retry logic
        if self.crash_counts[crashitem] <= self.max_retries:
            print(f"Retrying crashed test {crashitem} "
                  f"(attempt {self.crash_counts[crashitem]}/{self.max_retries})")
            
            # Reschedule the test
            sched.mark_test_pending(crashitem)
            report.outcome = "rerun"
        else:
            print(f"Test {crashitem} failed {self.max_retries} times, marking as crashed")
            report.outcome = "crashed"
            # Could also mark as skipped or failed depending on needs

def pytest_configure(config):
    if config.pluginmanager.hasplugin("dsession"):
        handler = CrashRecoveryHandler()
        config.pluginmanager.register(handler)
