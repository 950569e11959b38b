#!/usr/bin/env python3
"""Renders kube-reach's real output the way GitLab shows it, as HTML for a headless browser.

    render_pictures.py joblog JOB_LOG.ansi OUT.html   # the job log: sections, colours
    render_pictures.py tests JUNIT.xml OUT.html       # the test report: widget rows, Tests tab, details

Job log, after GitLab's `lib/gitlab/ci/ansi2json` converter: a section marker is
`section_(start|end):<ts>:<name>[options]\\r\\e[0K` (the regex of `lib/gitlab/regex.rb`); the text
after a start marker is the section's header line, drawn with a chevron and, unless the options
say `hide_duration=true`, a duration badge (end - start as mm:ss); a `collapsed=true` section shows
its header only; only SGR escapes are rendered (bold with a colour gives the light variant);
other escapes are removed; empty lines are dropped.

Test report, after `lib/gitlab/ci/parsers/test/junit.rb`: a case is failed, error, skipped or
success by which element it holds; a failure's output is its text, then "System Out:" and its
<system-out>; a skipped case's output is its text; a passing case keeps no output. The merge
request widget lists failed and errored cases by name alone; the Tests tab's columns are Suite
(classname), Name, Status and Duration; "View details" shows the classname as title, the name,
the execution time and the output.

Only the Python standard library; run by scripts/render-pictures.sh.
"""

import html
import re
import sys
import xml.etree.ElementTree as ET

SECTION = re.compile(
    r"section_((?:start)|(?:end)):(\d+):([a-zA-Z0-9_.-]+)"
    r"(\[(?:\w+=\w+)(?:, ?(?:\w+=\w+))*\])?\r\x1b\[0K"
)
ESCAPE = re.compile(r"\x1b\[([0-9;]*)([@-~])|\x1b[^\[]")

# GitLab's job log palette (dark), normal and light variants.
COLOURS = ["#000000", "#e05561", "#8cc265", "#d18f52", "#4aa5f0", "#c162de", "#42b3c2", "#e6e6e6"]
LIGHT = ["#636d83", "#ff616e", "#a5e075", "#f0a45d", "#4dc4ff", "#de73ff", "#4cd1e0", "#ffffff"]

PAGE = """<!doctype html><html><head><meta charset="utf-8"><style>
body {{ margin: 0; background: {bg}; font-family: 'DejaVu Sans', sans-serif; }}
{css}
</style></head><body>{body}</body></html>"""

JOBLOG_CSS = """
.log { background: #1f1f1f; color: #e6e6e6; font: 13px/20px 'DejaVu Sans Mono', monospace;
       padding: 10px 0; white-space: pre; }
.line { display: flex; }
.line > span:last-child { white-space: pre-wrap; overflow-wrap: anywhere; }  /* GitLab wraps */
.num { color: #868686; width: 46px; text-align: right; padding-right: 14px; flex: none; }
.header { cursor: pointer; }
.chevron { color: #e6e6e6; width: 16px; display: inline-block; }
.badge { margin-left: auto; margin-right: 16px; background: #5e5e5e; color: #fff;
         border-radius: 10px; padding: 0 8px; font-size: 12px; }
.bold { font-weight: bold; }
"""

TESTS_CSS = """
.page { padding: 20px 24px; color: #333238; font-size: 14px; }
h2 { font-size: 16px; margin: 0 0 10px; }
.widget { border: 1px solid #dcdcde; border-radius: 4px; margin-bottom: 24px; }
.widget .summary { padding: 12px 16px; border-bottom: 1px solid #dcdcde; }
.widget .suite { padding: 8px 16px 4px 40px; font-weight: bold; }
.widget .row { padding: 5px 16px 5px 56px; display: flex; }
.widget .row .name { flex: 1; }
.widget .row .action { color: #1f75cb; }
.icon-failed { color: #dd2b0e; margin-right: 8px; }
table { border-collapse: collapse; width: 100%; margin-bottom: 24px; }
th { text-align: left; background: #fbfafd; border-bottom: 1px solid #dcdcde; padding: 8px; }
td { border-bottom: 1px solid #ececef; padding: 6px 8px; vertical-align: top; }
.status-failed { color: #dd2b0e; } .status-error { color: #dd2b0e; font-weight: bold; }
.status-skipped { color: #9e5400; } .status-success { color: #108548; }
.modal { border: 1px solid #dcdcde; border-radius: 8px; box-shadow: 0 4px 12px rgba(0,0,0,.15);
         margin: 0 0 24px; }
.modal .title { font-size: 16px; font-weight: bold; padding: 14px 16px;
                border-bottom: 1px solid #dcdcde; }
.modal dl { display: grid; grid-template-columns: 140px 1fr; margin: 12px 16px; row-gap: 8px; }
.modal dt { font-weight: bold; } .modal dd { margin: 0; }
.modal pre { background: #fbfafd; border: 1px solid #dcdcde; padding: 10px; margin: 0;
             white-space: pre-wrap; font: 12px/17px 'DejaVu Sans Mono', monospace; }
"""


def sgr_spans(text):
    """HTML for one line with SGR colours; other escapes dropped."""
    out, fg, bold, pos = [], None, False, 0

    def emit(chunk):
        if not chunk:
            return
        style = []
        if fg is not None:
            style.append("color:" + (LIGHT if bold else COLOURS)[fg])
        cls = ' class="bold"' if bold else ""
        attr = ' style="%s"' % ";".join(style) if style else ""
        out.append("<span%s%s>%s</span>" % (cls, attr, html.escape(chunk)) if (cls or attr)
                   else html.escape(chunk))

    for m in ESCAPE.finditer(text):
        emit(text[pos:m.start()])
        pos = m.end()
        if m.group(2) != "m":
            continue
        for p in (m.group(1) or "0").split(";"):
            n = int(p or 0)
            if n == 0:
                fg, bold = None, False
            elif n == 1:
                bold = True
            elif n == 22:
                bold = False
            elif 30 <= n <= 37:
                fg = n - 30
            elif 90 <= n <= 97:
                fg, bold = n - 90, True
            elif n == 39:
                fg = None
    emit(text[pos:])
    return "".join(out)


def render_joblog(ansi):
    rows, number, hidden = [], 0, False
    starts = {}
    for raw in ansi.split("\n"):
        marker = SECTION.search(raw)
        if marker and marker.group(1) == "end":
            hidden = False
            continue
        if marker:
            kind, ts, name, options = marker.groups()
            options = options or ""
            header = raw[marker.end():]
            starts[name.lower()] = int(ts)
            collapsed = "collapsed=true" in options
            end_ts = None
            end = re.search(r"section_end:(\d+):%s\r" % re.escape(name), ansi)
            if end:
                end_ts = int(end.group(1))
            badge = ""
            if "hide_duration=true" not in options and end_ts is not None:
                secs = max(0, end_ts - int(ts))
                badge = '<span class="badge">%02d:%02d</span>' % (secs // 60, secs % 60)
            number += 1
            chevron = "&#9654;" if collapsed else "&#9660;"
            rows.append('<div class="line header"><span class="num">%d</span>'
                        '<span class="chevron">%s</span><span>%s</span>%s</div>'
                        % (number, chevron, sgr_spans(header), badge))
            hidden = collapsed
            continue
        text = raw.replace("\r", "")
        if not ESCAPE.sub("", text).strip():
            continue  # GitLab drops empty lines
        if hidden:
            continue
        number += 1
        rows.append('<div class="line"><span class="num">%d</span><span>%s</span></div>'
                    % (number, sgr_spans(text)))
    body = '<div class="log">%s</div>' % "".join(rows)
    return PAGE.format(bg="#1f1f1f", css=JOBLOG_CSS, body=body), 20 * len(rows) + 20


def element_value(element):
    """What GitLab's XML-to-hash conversion keeps of a status element."""
    if element is None:
        return None
    text = (element.text or "")
    if text.strip():
        return text
    if element.attrib:
        return "{%s}" % ", ".join('"%s"=>"%s"' % kv for kv in element.attrib.items())
    return None


def gitlab_cases(root):
    cases = {}
    for suite in root.iter("testsuite"):
        for case in suite.findall("testcase"):
            system_out = case.findtext("system-out")
            failure, error, skipped = (case.find(t) for t in ("failure", "error", "skipped"))
            if failure is not None or error is not None:
                status = "failed" if failure is not None else "error"
                parts = [element_value(failure if failure is not None else error)]
                if system_out:
                    parts.append("System Out:\n\n" + system_out)
                output = "\n\n".join(p for p in parts if p)
            elif skipped is not None:
                status, output = "skipped", element_value(skipped)
            else:
                status, output = "success", None
            key = (suite.get("name"), case.get("classname"), case.get("name"))
            cases[key] = {
                "suite": suite.get("name"), "classname": case.get("classname") or "",
                "name": case.get("name") or "(No name)", "status": status, "output": output,
                "time": float(case.get("time") or 0),
            }
    return list(cases.values())


def duration(seconds):
    return "%.2fms" % (seconds * 1000) if seconds < 1 else "%.2fs" % seconds


def render_tests(junit):
    cases = gitlab_cases(ET.fromstring(junit))
    failed = [c for c in cases if c["status"] in ("failed", "error")]
    counts = {s: sum(1 for c in cases if c["status"] == s)
              for s in ("failed", "error", "skipped", "success")}
    widget = ['<div class="widget"><div class="summary"><b>Test summary:</b> %d failed, %d total '
              'tests</div><div class="suite">kube-reach: %d failed, %d total tests</div>'
              % (len(failed), len(cases), len(failed), len(cases))]
    for c in failed:
        widget.append('<div class="row"><span class="icon-failed">&#10007;</span>'
                      '<span class="name">%s</span><span class="action">View details</span>'
                      '</div>' % html.escape(c["name"]))
    widget.append("</div>")
    # An excerpt of the Tests tab: the failures, a few skipped and a few passed cases.
    by_status = lambda status, n: [c for c in cases if c["status"] == status][:n]
    interesting = (by_status("failed", 6) + by_status("error", 4) + by_status("skipped", 4)
                   + by_status("success", 8))
    table = ["<table><tr><th>Suite</th><th>Name</th><th>Status</th><th>Duration</th></tr>"]
    for c in interesting:
        table.append('<tr><td>%s</td><td>%s</td><td class="status-%s">%s</td><td>%s</td></tr>'
                     % (html.escape(c["classname"]), html.escape(c["name"]), c["status"],
                        c["status"], duration(c["time"])))
    table.append("</table>")
    modals = []
    # An RBAC denial's details carry the RoleBinding that fixes it: the richest example.
    failures = sorted((c for c in cases if c["status"] == "failed"),
                      key=lambda c: "rbac.can-i" not in c["name"])
    picks = failures[:1] + \
            [c for c in cases if c["status"] == "skipped" and
             (c["output"] or "").startswith("warning:")][:1]
    for c in picks:
        modals.append('<div class="modal"><div class="title">%s</div><dl><dt>Name</dt><dd>%s</dd>'
                      '<dt>Execution time</dt><dd>%s</dd><dt>System output</dt><dd><pre>%s</pre>'
                      '</dd></dl></div>' % (html.escape(c["classname"]), html.escape(c["name"]),
                                            duration(c["time"]), html.escape(c["output"] or "")))
    body = ('<div class="page"><h2>Merge request widget (every failure counted as new)</h2>%s'
            '<h2>View details</h2>%s<h2>Pipeline &rarr; Tests &rarr; kube-reach: %d failed, '
            '%d errors, %d skipped, %d passed (excerpt)</h2>%s</div>'
            % ("".join(widget), "".join(modals), counts["failed"], counts["error"],
               counts["skipped"], counts["success"], "".join(table)))
    modal_lines = sum(len((c["output"] or "").splitlines()) + 8 for c in picks)
    height = 200 + 29 * len(failed) + 34 * (len(interesting) + 1) + 19 * modal_lines
    return PAGE.format(bg="#ffffff", css=TESTS_CSS, body=body), height


def main(argv):
    if len(argv) != 4 or argv[1] not in ("joblog", "tests"):
        sys.exit(__doc__)
    with open(argv[2], encoding="utf-8", newline="") as f:
        data = f.read()
    page, height = render_joblog(data) if argv[1] == "joblog" else render_tests(data)
    with open(argv[3], "w", encoding="utf-8") as f:
        f.write(page)
    print(height)  # the page's height in CSS pixels, for the screenshot's window


if __name__ == "__main__":
    main(sys.argv)
