"""compare.py EXPECTED.jsonl CLI.jsonl: the records a client wrote (EXPECTED, from the client's
scenario) against `riverbed -d DIR consume TOPIC -o beginning -e --json` of the same data
directory with the server stopped. Exact per partition, in offset order."""
import sys

from common import compare, read_jsonl

expected = read_jsonl(sys.argv[1])
topics = {r["topic"] for r in expected}
actual = [r for r in read_jsonl(sys.argv[2]) if r["topic"] in topics]
# The CLI prints no timestamp type; the clients' records all carry CreateTime.
compare(expected, actual, "data directory read by the riverbed CLI")
