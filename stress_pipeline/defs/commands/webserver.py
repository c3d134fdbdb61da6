"""A running dagster-webserver, through its GraphQL API: launch a job's run so the UI shows it, wait
for it, read the checks its group runs evaluated, and start or stop schedules.

Plain HTTP (urllib): the webserver may run on another host or in another environment; nothing here
needs this process's Dagster instance.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

TERMINAL = ("SUCCESS", "FAILURE", "CANCELED")

REPOSITORIES = """
{ repositoriesOrError { __typename ... on RepositoryConnection { nodes { name location { name }
    pipelines { name } schedules { id name pipelineName scheduleState { status } }
    sensors { name sensorState { status } } } } ... on PythonError { message } } }
"""
LAUNCH = """
mutation($params: ExecutionParams!) { launchRun(executionParams: $params) { __typename
  ... on LaunchRunSuccess { run { runId status } }
  ... on RunConfigValidationInvalid { errors { message } }
  ... on PythonError { message } ... on PipelineNotFoundError { message } ... on InvalidSubsetError { message }
  ... on RunConflict { message } ... on UnauthorizedError { message } } }
"""
RUN = """
query($id: ID!) { runOrError(runId: $id) { __typename ... on Run { runId status startTime endTime jobName }
  ... on RunNotFoundError { message } ... on PythonError { message } } }
"""
RUNS = """
query($filter: RunsFilter) { runsOrError(filter: $filter) { __typename
  ... on Runs { results { runId status jobName } } } }
"""
EVENTS = """
query($id: ID!, $cursor: String) { logsForRun(runId: $id, afterCursor: $cursor, limit: 1000) { __typename
  ... on EventConnection { cursor hasMore events { __typename
    ... on ExecutionStepFailureEvent { stepKey error { message } }
    ... on RunFailureEvent { message }
    ... on AssetCheckEvaluationEvent { evaluation { checkName assetKey { path } partition success severity } } } } } }
"""
START_SCHEDULE = """
mutation($selector: ScheduleSelector!) { startSchedule(scheduleSelector: $selector) { __typename
  ... on ScheduleStateResult { scheduleState { status } } ... on PythonError { message }
  ... on UnauthorizedError { message } } }
"""
STOP_SCHEDULE = """
mutation($id: String!) { stopRunningSchedule(id: $id) { __typename
  ... on ScheduleStateResult { scheduleState { status } } ... on PythonError { message }
  ... on UnauthorizedError { message } } }
"""


class WebserverError(RuntimeError):
    """The webserver could not be reached, or refused what was asked (its own words quoted)."""


@dataclass
class Launched:
    """A run launched through the webserver; ``url`` is its page in the UI."""

    run_id: str
    job: str
    url: str
    status: str = "QUEUED"
    start_time: float | None = None
    end_time: float | None = None
    failures: list[str] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    group_runs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "SUCCESS" and all(c["success"] or c["severity"] == "WARN" for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "job": self.job, "url": self.url, "status": self.status, "ok": self.ok,
                "start_time": self.start_time, "end_time": self.end_time, "failures": self.failures,
                "group_runs": self.group_runs, "checks": self.checks}  # fmt: skip


class Webserver:
    """One webserver at ``url`` (e.g. http://127.0.0.1:3000)."""

    def __init__(self, url: str, *, timeout: float = 60.0):
        if not url.startswith(("http://", "https://")):
            raise WebserverError(f"--webserver {url!r}: expected an http:// or https:// URL of a dagster-webserver")
        self.url = url.rstrip("/")
        self.timeout = timeout

    def query(self, text: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        body = json.dumps({"query": text, "variables": variables or {}}).encode()
        request = urllib.request.Request(f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as err:
            raise WebserverError(f"{self.url}/graphql answered HTTP {err.code}: {err.read()[:300]!r}") from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise WebserverError(f"no dagster-webserver answers at {self.url}: {reason}") from None
        except json.JSONDecodeError:
            raise WebserverError(f"{self.url}/graphql did not answer JSON: is it a dagster-webserver?") from None
        if answer.get("errors"):
            raise WebserverError(f"{self.url}/graphql: {answer['errors'][0].get('message')}")
        return answer["data"]

    def repository(self, job: str) -> dict[str, Any]:
        """The repository (with its location) that defines ``job``."""
        answer = self.query(REPOSITORIES)["repositoriesOrError"]
        if answer["__typename"] != "RepositoryConnection":
            raise WebserverError(f"{self.url}: the code location does not load: {answer.get('message')}")
        for node in answer["nodes"]:
            if any(p["name"] == job for p in node["pipelines"]):
                return node
        known = sorted(p["name"] for node in answer["nodes"] for p in node["pipelines"])
        raise WebserverError(f"{self.url}: no job {job!r} in its code locations (jobs: {', '.join(known) or 'none'})")

    def launch(self, job: str, run_config: dict[str, Any], tags: dict[str, str]) -> Launched:
        repo = self.repository(job)
        params = {
            "selector": {"repositoryLocationName": repo["location"]["name"], "repositoryName": repo["name"],
                         "jobName": job},
            "runConfigData": run_config,
            "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
        }  # fmt: skip
        answer = self.query(LAUNCH, {"params": params})["launchRun"]
        if answer["__typename"] != "LaunchRunSuccess":
            said = "; ".join(e["message"] for e in answer.get("errors", [])) or answer.get("message", "")
            raise WebserverError(f"{self.url} refused to launch {job}: {answer['__typename']}: {said}")
        run = answer["run"]
        return Launched(run["runId"], job, f"{self.url}/runs/{run['runId']}", run["status"])

    def wait(
        self, launched: Launched, *, poll_s: float = 1.0, timeout_s: float | None = None,
        queued_warning: Callable[[str], None] | None = None, queued_after_s: float = 30.0,
    ) -> Launched:  # fmt: skip
        """Poll the run until it ends, then read its failures and the checks of the runs it started.

        ``queued_warning`` is told once when the run is still QUEUED after ``queued_after_s``: a queued
        run starts only when the instance's daemon dequeues it."""
        started = time.monotonic()
        deadline = None if timeout_s is None else started + timeout_s
        while True:
            run = self.query(RUN, {"id": launched.run_id})["runOrError"]
            if run["__typename"] != "Run":
                raise WebserverError(f"run {launched.run_id}: {run['__typename']}: {run.get('message')}")
            launched.status, launched.start_time, launched.end_time = run["status"], run["startTime"], run["endTime"]
            if launched.status in TERMINAL:
                break
            if queued_warning and launched.status == "QUEUED" and time.monotonic() - started > queued_after_s:
                queued_warning(f"run {launched.run_id} is still QUEUED after {queued_after_s:g}s: the webserver's "
                               "instance queues runs and its dagster-daemon starts them (stress-pipeline ui runs "
                               "both): is the daemon running?")  # fmt: skip
                queued_warning = None
            if deadline is not None and time.monotonic() > deadline:
                raise WebserverError(f"run {launched.run_id} still {launched.status} after {timeout_s:g}s: "
                                     f"{launched.url}")  # fmt: skip
            time.sleep(poll_s)
        launched.failures = [line for event in self._events(launched.run_id) for line in _failure(event)]
        for group in self._group_runs(launched):
            launched.group_runs.append(group)
            for event in self._events(group["runId"]):
                if event["__typename"] == "AssetCheckEvaluationEvent":
                    ev = event["evaluation"]
                    launched.checks.append({"asset": "/".join(ev["assetKey"]["path"]), "check": ev["checkName"],
                                            "partition": ev["partition"], "success": ev["success"],
                                            "severity": ev["severity"], "run_id": group["runId"]})  # fmt: skip
        return launched

    def _group_runs(self, launched: Launched) -> list[dict[str, Any]]:
        """The runs the project's runner created while the launched run ran (its group runs, on the same
        instance; a sensor's or schedule's runs meanwhile are not among them)."""
        from stress_pipeline.defs.runner import LAUNCHED_BY_TAG

        if launched.start_time is None:
            return []
        window = {"createdAfter": launched.start_time, "createdBefore": launched.end_time or time.time(),
                  "tags": [{"key": LAUNCHED_BY_TAG, "value": "cli"}]}  # fmt: skip
        answer = self.query(RUNS, {"filter": window})["runsOrError"]
        runs = answer.get("results", []) if answer["__typename"] == "Runs" else []
        return [r for r in reversed(runs) if r["runId"] != launched.run_id]

    def _events(self, run_id: str) -> list[dict[str, Any]]:
        events, cursor = [], None
        while True:
            page = self.query(EVENTS, {"id": run_id, "cursor": cursor})["logsForRun"]
            if page["__typename"] != "EventConnection":
                return events
            events += page["events"]
            if not page["hasMore"]:
                return events
            cursor = page["cursor"]

    def schedules(self) -> list[dict[str, Any]]:
        """Every schedule of every code location, with its location and repository."""
        answer = self.query(REPOSITORIES)["repositoriesOrError"]
        if answer["__typename"] != "RepositoryConnection":
            raise WebserverError(f"{self.url}: the code location does not load: {answer.get('message')}")
        return [{**s, "location": node["location"]["name"], "repository": node["name"]}
                for node in answer["nodes"] for s in node["schedules"]]  # fmt: skip

    def set_schedule(self, schedule: dict[str, Any], on: bool) -> str:
        """Start or stop ``schedule`` (a row of :meth:`schedules`); its state afterwards."""
        if on:
            selector = {"repositoryLocationName": schedule["location"], "repositoryName": schedule["repository"],
                        "scheduleName": schedule["name"]}  # fmt: skip
            answer = self.query(START_SCHEDULE, {"selector": selector})["startSchedule"]
        else:
            answer = self.query(STOP_SCHEDULE, {"id": schedule["id"]})["stopRunningSchedule"]
        if answer["__typename"] != "ScheduleStateResult":
            said = f"{answer['__typename']}: {answer.get('message')}"
            raise WebserverError(f"{self.url}: schedule {schedule['name']}: {said}")
        return answer["scheduleState"]["status"]


def _failure(event: dict[str, Any]) -> list[str]:
    if event["__typename"] == "ExecutionStepFailureEvent":
        return [f"{event['stepKey']}: {(event.get('error') or {}).get('message', '').strip()}"]
    if event["__typename"] == "RunFailureEvent":
        return [event["message"]]
    return []
