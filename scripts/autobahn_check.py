#!/usr/bin/env python3
"""Check an Autobahn|Testsuite report (index.json) for one agent.

    autobahn_check.py REPORT_INDEX_JSON AGENT [--expect-cases N]

AGENT "*" means the report's only agent (kosoku names it after the server).

index.json (written by wstest's fuzzingserver/fuzzingclient, or by kosoku) maps
agent -> case id -> {"behavior": ..., "behaviorClose": ..., "reportfile": ...}.

A case passes when both `behavior` and `behaviorClose` are one of OK,
NON-STRICT, INFORMATIONAL. Everything else fails: FAILED, UNIMPLEMENTED,
WRONG CODE, UNCLEAN, FAILED BY CLIENT, ERROR, ... With --expect-cases N, every
case short of N is a missing case and counts as a failure too.

Prints a summary line, one line per failing case (id, verdicts, description
and result read from the per-case report file next to index.json), and a final
`N passed, M failed` line. Exit status 0 only when nothing failed and at least
one case was checked; 1 otherwise; 2 on usage or unreadable input.

Python 3, standard library only.
"""
import argparse
import json
import os
import sys

ACCEPTABLE = ("OK", "NON-STRICT", "INFORMATIONAL")
ORDER = ("OK", "NON-STRICT", "INFORMATIONAL", "FAILED", "UNIMPLEMENTED")


def case_key(case_id):
    """Numeric order: 1.2.10 after 1.2.9."""
    out = []
    for part in str(case_id).split("."):
        try:
            out.append((0, int(part), ""))
        except ValueError:
            out.append((1, 0, part))
    return out


def one_line(text, limit=160):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def case_details(report_dir, entry):
    """(description, result, resultClose) from the per-case JSON, if readable."""
    name = entry.get("reportfile")
    if not name:
        return None
    try:
        with open(os.path.join(report_dir, os.path.basename(name)), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data.get("description", ""), data.get("result", ""), data.get("resultClose", "")


def verdict(entry):
    """Summary bucket for a case: its behavior if both verdicts are acceptable,
    else the first unacceptable verdict (a bad close verdict counts as FAILED)."""
    beh = str(entry.get("behavior", "MISSING-VERDICT"))
    close = str(entry.get("behaviorClose", "MISSING-VERDICT"))
    if beh not in ACCEPTABLE:
        return beh, False
    if close not in ACCEPTABLE:
        return ("UNIMPLEMENTED" if close == "UNIMPLEMENTED" else "FAILED"), False
    return beh, True


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Summarise an Autobahn|Testsuite index.json for one agent."
    )
    ap.add_argument("index", metavar="REPORT_INDEX_JSON")
    ap.add_argument("agent", metavar="AGENT", help='agent name in the report; "*" = its only agent')
    ap.add_argument("--expect-cases", type=int, default=None, metavar="N",
                    help="number of cases the run should have produced; the shortfall counts as failed")
    args = ap.parse_args(argv)

    try:
        with open(args.index, encoding="utf-8") as f:
            index = json.load(f)
    except (OSError, ValueError) as e:
        print("autobahn: cannot read report %s: %s" % (args.index, e), file=sys.stderr)
        print("0 passed, %d failed" % (args.expect_cases or 1))
        return 2
    if not isinstance(index, dict):
        print("autobahn: %s is not an Autobahn index.json (top level is not an object)" % args.index,
              file=sys.stderr)
        print("0 passed, %d failed" % (args.expect_cases or 1))
        return 2

    agent = args.agent
    if agent == "*":
        # kosoku's fuzzingclient names the agent after the server's Server
        # header; "*" accepts the report's only agent.
        if len(index) == 1:
            agent = next(iter(index))
        else:
            print("autobahn: agent '*' needs exactly one agent in %s (found %d: %s)"
                  % (args.index, len(index), ", ".join(sorted(index)) or "none"), file=sys.stderr)
    cases = index.get(agent)
    if cases is None and agent != "*":
        agents = ", ".join(sorted(index)) or "none"
        print("autobahn: agent %r not in report %s (agents present: %s)" % (agent, args.index, agents),
              file=sys.stderr)
    if cases is None:
        cases = {}

    report_dir = os.path.dirname(os.path.abspath(args.index))
    counts = dict.fromkeys(ORDER, 0)
    failures = []
    passed = 0
    for case_id in sorted(cases, key=case_key):
        entry = cases[case_id] if isinstance(cases[case_id], dict) else {}
        bucket, ok = verdict(entry)
        counts[bucket] = counts.get(bucket, 0) + 1
        if ok:
            passed += 1
        else:
            failures.append((case_id, entry))

    present = len(cases)
    missing = 0
    extra_note = ""
    if args.expect_cases is not None:
        missing = max(0, args.expect_cases - present)
        if present > args.expect_cases:
            extra_note = " (%d more than the %d expected)" % (present - args.expect_cases, args.expect_cases)

    parts = ["%d %s" % (counts[k], k) for k in ORDER]
    parts += ["%d %s" % (v, k) for k, v in sorted(counts.items()) if k not in ORDER]
    parts.append("%d missing" % missing)
    total = present + missing
    print("autobahn: %d cases%s: %s" % (total, extra_note, ", ".join(parts)))

    for case_id, entry in failures:
        line = "  FAIL %s: behavior=%s behaviorClose=%s" % (
            case_id, entry.get("behavior", "?"), entry.get("behaviorClose", "?"))
        details = case_details(report_dir, entry)
        if details:
            desc, result, result_close = details
            line += "\n       description: %s\n       result: %s" % (one_line(desc), one_line(result))
            if str(entry.get("behaviorClose", "")) not in ACCEPTABLE:
                line += "\n       close: %s" % one_line(result_close)
        print(line)
    if missing:
        print("  MISSING %d case(s): report has %d of %d expected" % (missing, present, args.expect_cases))

    failed = len(failures) + missing
    if total == 0:
        print("autobahn: no cases in report for agent %r" % args.agent, file=sys.stderr)
        failed = max(failed, 1)
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
