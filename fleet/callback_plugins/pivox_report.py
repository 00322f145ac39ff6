# What happened to each Pi in a fleet run, for fleet/pivox-fleet's summary: written when the run
# ends, whether every batch went through or a failed one stopped it (Ansible reports its stats
# either way). A task says a Pi's outcome by setting the fact `fleet_outcome`; a Pi that answered
# and got none is "untouched"; one that SSH could not reach is "not reached (why)".
#
# The report is the file named by PIVOX_FLEET_REPORT, a line a Pi, "HOST<tab>OUTCOME", in the
# order the Pis first answered; without that variable this plugin does nothing.

import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: pivox_report
type: notification
short_description: each Pi's outcome, for fleet/pivox-fleet's summary
description:
  - Writes one line per host, HOST<tab>OUTCOME, to the file named by PIVOX_FLEET_REPORT when the
    run ends. Outcomes come from the fact fleet_outcome that the fleet playbooks set.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "pivox_report"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.path = os.environ.get("PIVOX_FLEET_REPORT", "")
        self.outcomes = {}

    def _seen(self, result, outcome):
        host = result._host.get_name()
        if host == "localhost":
            return
        if outcome is not None:
            self.outcomes[host] = outcome
        else:
            self.outcomes.setdefault(host, "untouched")

    def v2_runner_on_ok(self, result):
        facts = result._result.get("ansible_facts") or {}
        self._seen(result, facts.get("fleet_outcome"))

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._seen(result, None)

    def v2_runner_on_unreachable(self, result):
        message = str(result._result.get("msg") or "no answer").strip().splitlines() or ["no answer"]
        self._seen(result, f"not reached ({message[-1].strip()})")

    def v2_playbook_on_stats(self, stats):
        if not self.path:
            return
        with open(self.path, "w", encoding="utf-8") as report:
            for host, outcome in self.outcomes.items():
                report.write(f"{host}\t{' '.join(outcome.split())}\n")
