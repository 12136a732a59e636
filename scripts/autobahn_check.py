#!/usr/bin/env python3
"""Check Autobahn TestSuite reports against the project's conformance policy.

Reads the index.json written by `wstest` (fuzzingclient -> reports/servers,
reports/servers-host, reports/servers-loop; fuzzingserver -> reports/clients),
whose structure is

    {agent: {case_id: {"behavior": ..., "behaviorClose": ..., "duration": ...,
                       "remoteCloseCode": ..., "reportfile": ...}}}

and for each side (`server`: examples/echo_server on the tokio driver;
`host`: the framework's examples/ws_echo_server; `loop`: the event loop's
examples/loop_echo_server, cases 1-10 only; `client`: examples/autobahn_client):

  * builds a summary {case_id: "behavior/behaviorClose"}, sorted numerically
    by case id ("6.4.3" < "6.10.1" < "12.1.10");
  * a case is *acceptable* when each of behavior and behaviorClose is OK or
    INFORMATIONAL, or is NON-STRICT / UNIMPLEMENTED and the case id is
    explained in conformance/NOTES.md by a line `- <case id>: <explanation>`;
    a case that was supposed to run but is absent from the report is never
    acceptable;
  * compares the summary with the committed expected file
    (conformance/expected-server.json / expected-client.json), restricted to
    the cases selected by --cases; with --update the expected file is
    rewritten instead (entries for cases outside --cases are kept).

A case counts as passed when it is acceptable and (unless --update) matches
the expected file. The last line printed is `autobahn: N passed, M failed`.
Exit status: 0 when M == 0, 1 otherwise, 2 on usage errors.
"""

import argparse
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DEFAULT_CASES = "1.*,2.*,3.*,4.*,5.*,6.*,7.*,8.*,9.*,10.*"

# Sections 1-10: RFC 6455 without extensions (12 and 13 are permessage-deflate).
CORE_GROUPS = frozenset(range(1, 11))

SIDES = {
    # side: (report dir, default agent, expected file, case groups run: None = all)
    "server": ("reports/servers", "simples", "conformance/expected-server.json", None),
    "host": ("reports/servers-host", "simples-host", "conformance/expected-host.json", None),
    # The event loop does not negotiate permessage-deflate (event_loop docs).
    "loop": ("reports/servers-loop", "simples-loop", "conformance/expected-loop.json", CORE_GROUPS),
    "client": ("reports/clients", "simples-client", "conformance/expected-client.json", None),
}

ALWAYS_OK = {"OK", "INFORMATIONAL"}
OK_IF_NOTED = {"NON-STRICT", "UNIMPLEMENTED"}
MISSING = "MISSING"

CASE_ID_RE = re.compile(r"^\d+(?:\.\d+)*$")
NOTE_RE = re.compile(r"^- (\d+(?:\.\d+)*):\s*(\S.*)$")


def case_key(case_id):
    return tuple(int(x) for x in case_id.split("."))


def sort_summary(summary):
    return {k: summary[k] for k in sorted(summary, key=case_key)}


def parse_patterns(text):
    pats = [p.strip() for p in text.split(",") if p.strip()]
    if not pats:
        raise ValueError("empty --cases list")
    for p in pats:
        if not re.fullmatch(r"[0-9.*]+", p):
            raise ValueError("bad case pattern %r (expected e.g. '1.*' or '6.4.3')" % p)
    return pats


def pattern_matcher(patterns):
    """Same semantics as wstest's CaseSet.resolveCasePatternList: a pattern
    with '*' is a regex ('.' literal, '*' -> '.*') matched at the start of the
    id; a pattern without '*' names one case exactly."""
    regexes = []
    exact = set()
    for p in patterns:
        if "*" in p:
            regexes.append(re.compile(p.replace(".", r"\.").replace("*", ".*")))
        else:
            exact.add(p)

    def matches(case_id):
        return case_id in exact or any(r.match(case_id) for r in regexes)

    return matches


def side_matcher(side, matches):
    """`matches` restricted to the case groups `side` runs."""
    groups = SIDES[side][3]
    if groups is None:
        return matches
    return lambda case_id: matches(case_id) and case_key(case_id)[0] in groups


def side_patterns(side, patterns):
    """The patterns of `patterns` that can select a case `side` runs (a
    pattern whose first number has a '*' is kept; the checker filters)."""
    groups = SIDES[side][3]
    if groups is None:
        return list(patterns)
    kept = []
    for p in patterns:
        head = p.split(".")[0]
        if "*" in head or int(head) in groups:
            kept.append(p)
    return kept


def load_notes(path):
    """Case ids explained in NOTES.md: lines `- <case id>: <explanation>`
    outside fenced code blocks."""
    noted = {}
    if not os.path.exists(path):
        return noted
    in_fence = False
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.lstrip().startswith("```"):
                in_fence = not in_fence
                continue
            if in_fence:
                continue
            m = NOTE_RE.match(line.rstrip("\n"))
            if m:
                noted[m.group(1)] = m.group(2).strip()
    return noted


def field_ok(value, case_id, noted):
    if value in ALWAYS_OK:
        return True
    if value in OK_IF_NOTED and case_id in noted:
        return True
    return False


def load_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def check_side(side, args, matches, noted):
    """Returns (passed, failed, problems:list[str])."""
    report_dir, default_agent, expected_rel, _ = SIDES[side]
    matches = side_matcher(side, matches)
    report_dir = os.path.join(args.root, report_dir)
    agent = getattr(args, side + "_agent", None) or default_agent
    index_path = os.path.join(report_dir, "index.json")
    expected_path = os.path.join(args.root, expected_rel)
    problems = []

    # Cases that should have run: the exact list wstest resolved (written by
    # scripts/autobahn as cases.json), else derived from the patterns.
    case_list_path = os.path.join(report_dir, "cases.json")
    run_cases = None
    if os.path.exists(case_list_path):
        run_cases = [c for c in load_json(case_list_path) if matches(c)]

    results = {}
    if not os.path.exists(index_path):
        why = ("did autobahn_client reach /updateReports?" if side == "client"
               else "did wstest fuzzingclient run to the end?")
        problems.append("%s: no report at %s (%s)" % (side, index_path, why))
    else:
        try:
            index = load_json(index_path)
        except ValueError as e:
            index = {}
            problems.append("%s: cannot parse %s: %s" % (side, index_path, e))
        if agent not in index:
            if index:
                problems.append("%s: agent %r not in %s (agents: %s)"
                                % (side, agent, index_path, ", ".join(sorted(index))))
        else:
            results = index[agent]

    expected = {}
    if os.path.exists(expected_path):
        expected = load_json(expected_path)
    elif not args.update:
        problems.append("%s: no expected file %s (run scripts/autobahn --update)"
                        % (side, os.path.relpath(expected_path, args.root)))

    if run_cases is None:
        run_cases = {c for c in results if matches(c)}
        run_cases |= {c for c in expected if matches(c)}
    run_cases = sorted(set(run_cases), key=case_key)
    if not run_cases:
        problems.append("%s: no cases selected" % side)

    extra = sorted((c for c in results if c not in set(run_cases)), key=case_key)
    if extra:
        print("%s: note: ignoring %d reported case(s) outside the selection: %s"
              % (side, len(extra), ", ".join(extra[:10]) + (" ..." if len(extra) > 10 else "")))

    summary = {}
    for c in run_cases:
        r = results.get(c)
        if r is None:
            summary[c] = MISSING + "/" + MISSING
        else:
            summary[c] = "%s/%s" % (r.get("behavior"), r.get("behaviorClose"))
    summary = sort_summary(summary)

    unacceptable = []
    for c, v in summary.items():
        r = results.get(c)
        if r is None:
            unacceptable.append(c)
            continue
        if not (field_ok(r.get("behavior"), c, noted) and field_ok(r.get("behaviorClose"), c, noted)):
            unacceptable.append(c)

    failed = set(unacceptable)
    quiet = not results  # nothing ran: one line instead of a list of MISSING cases
    if quiet and summary:
        print("%s: all %d selected case(s) are missing from the report" % (side, len(summary)))
    elif unacceptable:
        print("%s: %d case(s) not acceptable:" % (side, len(unacceptable)))
        for c in unacceptable:
            r = results.get(c) or {}
            hint = ""
            if c not in noted and (r.get("behavior") in OK_IF_NOTED or r.get("behaviorClose") in OK_IF_NOTED):
                hint = "  (acceptable only if explained in conformance/NOTES.md)"
            if c not in results:
                hint = "  (not in the report: the case did not run or did not finish)"
            rf = r.get("reportfile")
            where = "  report: %s" % os.path.join(os.path.relpath(report_dir, args.root), rf) if rf else ""
            print("  %-10s %s%s%s" % (c, summary[c], hint, where))

    selected = set(run_cases)
    missing = [c for c in summary if c not in results]
    if args.update and missing:
        problems.append("%s: not updating %s: %d selected case(s) missing from the report"
                        % (side, os.path.relpath(expected_path, args.root), len(missing)))
    elif args.update:
        merged = {k: v for k, v in expected.items() if not matches(k) and k not in selected}
        merged.update(summary)
        merged = sort_summary(merged)
        os.makedirs(os.path.dirname(expected_path), exist_ok=True)
        with open(expected_path, "w", encoding="utf-8") as f:
            json.dump(merged, f, indent=2)
            f.write("\n")
        print("%s: wrote %s (%d cases, %d from this run)"
              % (side, os.path.relpath(expected_path, args.root), len(merged), len(summary)))
    elif os.path.exists(expected_path):
        exp_sel = {k: v for k, v in expected.items() if matches(k) or k in selected}
        diffs = []
        for c in sorted(set(exp_sel) | set(summary), key=case_key):
            want = exp_sel.get(c, "(not in expected file)")
            got = summary.get(c, "(not run)")
            if want != got:
                diffs.append((c, want, got))
        if diffs and quiet:
            print("%s: %d case(s) differ from %s (none ran)"
                  % (side, len(diffs), os.path.relpath(expected_path, args.root)))
            failed |= {c for c, _, _ in diffs}
        elif diffs:
            print("%s: %d case(s) differ from %s:" % (side, len(diffs), os.path.relpath(expected_path, args.root)))
            for c, want, got in diffs:
                print("  %-10s expected %-28s got %s" % (c, want, got))
            failed |= {c for c, _, _ in diffs}
    else:
        failed |= set(summary)

    n_failed = len(failed)
    n_passed = len(set(summary) - failed)
    print("%s (agent %s): %d cases selected, %d acceptable, %d not acceptable, %d counted as failed"
          % (side, agent, len(summary), len(summary) - len(unacceptable), len(unacceptable), n_failed))
    if problems and n_failed == 0:
        n_failed = 1  # a broken run (no report, no expected file) must not pass
    return n_passed, n_failed, problems


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default=ROOT, help="repository root (default: %(default)s)")
    p.add_argument("--sides", default="server,client",
                   help="comma list of sides to check: server, host, loop, client (default: %(default)s)")
    p.add_argument("--cases", default=DEFAULT_CASES,
                   help="comma list of case patterns that were run (default: %(default)s)")
    p.add_argument("--update", action="store_true",
                   help="rewrite the expected files instead of comparing")
    p.add_argument("--notes", default=None, help="notes file (default: ROOT/conformance/NOTES.md)")
    p.add_argument("--server-agent", default=None, help="agent name in reports/servers (default: simples)")
    p.add_argument("--client-agent", default=None, help="agent name in reports/clients (default: simples-client)")
    p.add_argument("--side-info", metavar="SIDE", default=None,
                   help="print `AGENT REPORT_DIR PATTERNS` for SIDE (PATTERNS: the --cases it runs, "
                        "comma-separated, empty if none) and exit; used by scripts/autobahn")
    args = p.parse_args(argv)
    args.root = os.path.abspath(args.root)

    try:
        patterns = parse_patterns(args.cases)
    except ValueError as e:
        p.error(str(e))
    if args.side_info is not None:
        if args.side_info not in SIDES:
            p.error("unknown side %r (expected one of %s)" % (args.side_info, ", ".join(SIDES)))
        report_dir, agent, _, _ = SIDES[args.side_info]
        print(agent, report_dir, ",".join(side_patterns(args.side_info, patterns)))
        return 0
    sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    for s in sides:
        if s not in SIDES:
            p.error("unknown side %r (expected one of %s)" % (s, ", ".join(SIDES)))
    if not sides:
        p.error("no sides selected")

    matches = pattern_matcher(patterns)
    noted = load_notes(args.notes or os.path.join(args.root, "conformance", "NOTES.md"))

    total_passed = total_failed = 0
    all_problems = []
    for side in sides:
        passed, failed, problems = check_side(side, args, matches, noted)
        total_passed += passed
        total_failed += failed
        all_problems += problems
    for prob in all_problems:
        print("error: " + prob)
    print("autobahn: %d passed, %d failed" % (total_passed, total_failed))
    return 0 if total_failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
