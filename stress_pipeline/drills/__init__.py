"""Operational drills: the decision flood and the failure drills, each run against the system under
test (the risk stack, the paper engine, the live state) with its pass criteria evaluated."""
