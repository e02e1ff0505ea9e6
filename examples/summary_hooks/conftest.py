"""A project's own terminal summary section, as many projects add one.

pytest-xdist runs `pytest_terminal_summary` in its controller over every worker's reports;
xdist runs it in its summary step. Either way the section must show the whole run.
"""


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    tr = terminalreporter
    tr.section("project summary")
    for category in sorted(k for k in tr.stats if k):
        reports = tr.stats[category]
        if category == "warnings":
            tr.write_line("warnings: {}".format(sorted(w.nodeid for w in reports)))
            continue
        ids = sorted({r.nodeid for r in reports})
        tr.write_line("{}: {} ({})".format(category, len(ids), ", ".join(ids)))
    slow = sorted(
        r.nodeid for r in tr.stats.get("passed", []) if getattr(r, "user_properties", None)
    )
    tr.write_line("with properties: {}".format(", ".join(slow) or "none"))
    tr.write_line("exit status: {}".format(int(exitstatus)))
    tr.write_line("reportchars: {}".format(tr.reportchars))
