"""roimon recording rules and alerts, by concern: node, fleet, finance,
operations. Each becomes deploy/prometheus/rules/roimon-<concern>.yml (and the
same groups in the Helm chart's PrometheusRule).

Naming: level:metric:operation, the level naming the labels kept besides
`currency` (money in different currencies never adds up):
  instance:               one roimon daemon (with its `cluster`)
  cluster:                every node of a cluster
  cluster_team_workload:  an owner within a cluster
  team_workload:          an owner across every node and cluster
  (empty)                 everything this Prometheus sees, e.g. :roimon_roi:ratio1h
  instance_team_workload: an owner on one daemon
ROI is financial ROI, (V - M) / M, always from sums (Σvalue, Σcost), never an
average of ratios, and recorded only where the cost over the window is > 0.
Every ROI (node, owner, cluster, fleet) is read from the daemons' rolling
window gauges (roimon_window_*, roimon_owner_window_*), not from increase()
over this Prometheus's history: a Prometheus restart, a gap in its data or a
retention shorter than the window never changes an ROI, and the rules agree
with the daemons' /api/v1/summary. The names ending in increase1h/increase24h
are kept for the dashboards and queries that use them: they are the value and
cost of the daemons' 1h and 24h windows.
"""

from config import CONFIG as C
from yamlout import Folded

RUNBOOK = C["runbook_base"]


def rec(record, expr, comment=None):
    return {"record": record, "expr": expr, "_comment": comment}


def roi(level, window, only=None):
    """ROI from the recorded value and cost; `only`: an `and` clause that
    keeps it where the daemons have one (a value source)."""
    v, c = f"{level}:roimon_value:increase{window}", f"{level}:roimon_cost:increase{window}"
    expr = f"({v} - {c})\n  / ({c} > 0)\n"
    if only:
        expr = f"(\n  {v} - {c}\n)\n  / ({c} > 0)\nand on ({only[0]})\n  {only[1]}\n"
    return rec(f"{level}:roimon_roi:ratio{window}", expr)


def win(metric, window):
    return f'{metric}{{window="{window}"}}'


def alert(name, expr, for_, severity, summary, description, comment, extra_labels=None):
    labels = {"severity": severity}
    labels.update(extra_labels or {})
    return {
        "alert": name,
        "expr": expr,
        "for": for_,
        "labels": labels,
        "annotations": {
            "summary": summary,
            "description": Folded(description),
            "runbook_url": f"{RUNBOOK}#{name.lower()}",
        },
        "_comment": comment,
    }


def value_query(metric_fmt):
    """An annotation fragment printing one recorded value with 2 decimals."""
    return (
        "{{ with printf " + metric_fmt + " | query }}"
        "{{ . | first | value | printf \"%.2f\" }}{{ end }}"
    )


OWNER_QUERY_ARGS = " $labels.team $labels.workload $labels.currency"
NODE = "cluster, instance"

# ---------------------------------------------------------------------------
# node: one roimon daemon
# ---------------------------------------------------------------------------
NODE_GROUPS = [
    {
        "name": "roimon-node-5m",
        "_comment": "Rates per node, for the fleet dashboard and the cluster sums.",
        "rules": [
            rec("instance:roimon_cost:rate5m",
                f"sum by ({NODE}, currency) (rate(roimon_cost_total[5m]))",
                "Money per second, every cost component."),
            rec("instance:roimon_value:rate5m",
                f"sum by ({NODE}, currency) (rate(roimon_value_total[5m]))"),
            rec("instance:roimon_facility_energy_joules:rate5m",
                f"sum by ({NODE}) (rate(roimon_facility_energy_joules_total[5m]))",
                "Facility power in watts (IT energy x PUE), from the counter."),
            rec("instance:roimon_unaccounted_seconds:rate5m",
                f"sum by ({NODE}) (rate(roimon_unaccounted_seconds_total[5m]))",
                "GPU-seconds per second with no usable reading: how many GPUs roimon is blind to."),
        ],
    },
    {
        "name": "roimon-node-1h",
        "rules": [
            rec("instance:roimon_value:increase1h",
                f"sum by ({NODE}, currency) ({win('roimon_window_value', '1h')})",
                "The daemon's 1h window (its gauges, not increase() over this Prometheus's history)."),
            rec("instance:roimon_cost:increase1h",
                f"sum by ({NODE}, currency) ({win('roimon_window_cost', '1h')})"),
            roi("instance", "1h", (NODE, win("roimon_roi_ratio", "1h"))),
            rec("instance:roimon_tokens:increase1h",
                f"sum by ({NODE}) (increase(roimon_tokens_total[1h])) > 0",
                "Unit economics: recorded only where tokens were served (> 0), no division by zero."),
            rec("instance:roimon_cost_per_million_tokens:ratio1h",
                "instance:roimon_cost:increase1h\n"
                f"  / on ({NODE}) group_left instance:roimon_tokens:increase1h\n* 1e6\n"),
            rec("instance:roimon_tokens_per_joule:ratio1h",
                "instance:roimon_tokens:increase1h\n"
                f"  / on ({NODE})\n"
                f"(sum by ({NODE}) (increase(roimon_facility_energy_joules_total[1h])) > 0)\n"),
        ],
    },
    {
        "name": "roimon-node-24h",
        "_comment": (
            "The daemon's 24h window: gauges, cheap to read at every evaluation, so\n"
            "these agree with the daemon at any moment (no 5-minute group interval)."
        ),
        "rules": [
            rec("instance:roimon_value:increase24h",
                f"sum by ({NODE}, currency) ({win('roimon_window_value', '24h')})"),
            rec("instance:roimon_cost:increase24h",
                f"sum by ({NODE}, currency) ({win('roimon_window_cost', '24h')})"),
            roi("instance", "24h", (NODE, win("roimon_roi_ratio", "24h"))),
        ],
    },
    {
        "name": "roimon-node-alerts",
        "rules": [
            alert(
                "RoimonRoiDroppedAgainstBaseline",
                "(\n  1 - roimon_roi_ratio{window=\"" + C["baseline_window"] + "\"}\n"
                "        / (roimon_roi_baseline_ratio{window=\"" + C["baseline_window"] + "\"} > 0)\n"
                f") > {C['roi_drop']}\n"
                "and on (cluster, job, instance)\n"
                "  roimon_roi_baseline_span_seconds{window=\"" + C["baseline_window"] + "\"}"
                f" >= {C['min_roi_seconds']}\n"
                "unless on (cluster, job, instance)\n"
                "  roimon_value_target_up == 0\n",
                "15m", "warning",
                "ROI of {{ $labels.instance }} dropped {{ $value | humanizePercentage }} below its baseline",
                "The " + C["baseline_window"] + " ROI of the node {{ $labels.instance }} is "
                "{{ with printf \"roimon_roi_ratio{window=\\\"" + C["baseline_window"] + "\\\",instance=%q}\" $labels.instance | query }}{{ . | first | value | humanizePercentage }}{{ end }}, "
                "against its trailing baseline of "
                "{{ with printf \"roimon_roi_baseline_ratio{window=\\\"" + C["baseline_window"] + "\\\",instance=%q}\" $labels.instance | query }}{{ . | first | value | humanizePercentage }}{{ end }} "
                "(resting on "
                "{{ with printf \"roimon_roi_baseline_span_seconds{window=\\\"" + C["baseline_window"] + "\\\",instance=%q}\" $labels.instance | query }}{{ . | first | value | humanizeDuration }}{{ end }} "
                "of history): "
                f"{{{{ $value | humanizePercentage }}}} lower (threshold {C['roi_drop'] * 100:g} %).",
                "A node's ROI over its " + C["baseline_window"] + " window (the daemon's roimon_roi_ratio) fell by\n"
                "more than the threshold against its trailing baseline (an EWMA with a\n"
                "one-day time constant, exported by the daemon with the seconds of history\n"
                "it rests on). Works from the first hour: the baseline uses the history it\n"
                "has, at least min_roi_seconds. Only a positive baseline counts; with a\n"
                "baseline <= 0 RoimonRoiBelowThreshold speaks. Silent while a value target\n"
                "of the node is down (RoimonValueNotMeasured speaks). $value = 1 - ROI / baseline.",
            ),
        ],
    },
]

# ---------------------------------------------------------------------------
# fleet: across nodes, per cluster and owner
# ---------------------------------------------------------------------------
CTW = "cluster, team, workload"
RW, BW, SW, HW = C["roi_window"], C["baseline_window"], C["short_window"], C["history_window"]


def _seconds(label):
    n, unit = int(label[:-1]), label[-1]
    return n * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit]


SW_SECONDS = _seconds(SW)
UNLESS_NOT_MEASURED = (
    "unless on (team, workload)\n"
    "  instance_team_workload:roimon_value_not_measured:max\n"
)


def owner_window_query(metric, window, fmt='printf "%.2f"', currency=True):
    """An annotation fragment printing one owner's recorded figure over a window."""
    sel = f'window=\\"{window}\\",team=%q,workload=%q' + (",currency=%q" if currency else "")
    args = " $labels.team $labels.workload" + (" $labels.currency" if currency else "")
    return (
        f'{{{{ with printf "{metric}{{{sel}}}"{args} | query }}}}'
        f"{{{{ . | first | value | {fmt} }}}}{{{{ end }}}}"
    )
FLEET_GROUPS = [
    {
        "name": "roimon-fleet-5m",
        "_comment": (
            "Rates per cluster and owner, for the fleet dashboard. Cluster sums\n"
            "read the node rules (roimon-node-5m): one evaluation of lag."
        ),
        "rules": [
            rec("cluster_team_workload:roimon_gpu_cost:rate5m",
                f"sum by ({CTW}, currency) (rate(roimon_gpu_cost_total[5m]))"),
            rec("cluster_team_workload:roimon_value:rate5m",
                f"sum by ({CTW}, currency) (rate(roimon_value_total[5m]))"),
            rec("cluster_team_workload:roimon_gpu_facility_energy_joules:rate5m",
                f"sum by ({CTW}) (rate(roimon_gpu_facility_energy_joules_total[5m]))",
                "Facility power (W) attributed to each owner."),
            rec("cluster:roimon_cost:rate5m",
                "sum by (cluster, currency) (instance:roimon_cost:rate5m)"),
            rec("cluster:roimon_value:rate5m",
                "sum by (cluster, currency) (instance:roimon_value:rate5m)"),
            rec("cluster:roimon_facility_energy_joules:rate5m",
                "sum by (cluster) (instance:roimon_facility_energy_joules:rate5m)"),
            rec("cluster:roimon_unaccounted_seconds:rate5m",
                "sum by (cluster) (instance:roimon_unaccounted_seconds:rate5m)"),
            rec("cluster:roimon_gpus:count", "count by (cluster) (roimon_gpu_info)"),
            rec("cluster:roimon_gpus_down:sum",
                "sum by (cluster) (1 - roimon_gpu_up)",
                "GPUs a daemon knows but NVML no longer answers for (0 when all are up)."),
            rec("cluster:roimon_collectors_down:sum",
                "sum by (cluster) (1 - roimon_collector_up)",
                "Collectors and feeds whose last sample failed, over the cluster's daemons."),
        ],
    },
    {
        "name": "roimon-fleet-1h",
        "rules": [
            rec("team_workload:roimon_value:increase1h",
                f"sum by (team, workload, currency) ({win('roimon_owner_window_value', '1h')})",
                "Σ over the daemons of each owner's 1h window (gauges: no increase())."),
            rec("team_workload:roimon_cost:increase1h",
                f"sum by (team, workload, currency) ({win('roimon_owner_window_cost', '1h')})"),
            roi("team_workload", "1h", ("team, workload", "roimon_value_total")),
            rec("cluster_team_workload:roimon_value:increase1h",
                f"sum by ({CTW}, currency) ({win('roimon_owner_window_value', '1h')})"),
            rec("cluster_team_workload:roimon_cost:increase1h",
                f"sum by ({CTW}, currency) ({win('roimon_owner_window_cost', '1h')})"),
            roi("cluster_team_workload", "1h", (CTW, "roimon_value_total")),
            rec("cluster:roimon_value:increase1h",
                "sum by (cluster, currency) (instance:roimon_value:increase1h)",
                "Σ over nodes (roimon-node-1h); a node without value still counts its cost."),
            rec("cluster:roimon_cost:increase1h",
                "sum by (cluster, currency) (instance:roimon_cost:increase1h)"),
            roi("cluster", "1h"),
            rec(":roimon_value:increase1h", "sum by (currency) (instance:roimon_value:increase1h)"),
            rec(":roimon_cost:increase1h", "sum by (currency) (instance:roimon_cost:increase1h)"),
            roi("", "1h"),
            rec("team_workload:roimon_tokens:increase1h",
                "sum by (team, workload) (increase(roimon_tokens_total[1h])) > 0"),
            rec("team_workload:roimon_cost_per_million_tokens:ratio1h",
                "team_workload:roimon_cost:increase1h\n"
                "  / on (team, workload) group_left team_workload:roimon_tokens:increase1h\n* 1e6\n"),
        ],
    },
    {
        "name": "roimon-fleet-24h",
        "rules": [
            rec("team_workload:roimon_value:increase24h",
                f"sum by (team, workload, currency) ({win('roimon_owner_window_value', '24h')})"),
            rec("team_workload:roimon_cost:increase24h",
                f"sum by (team, workload, currency) ({win('roimon_owner_window_cost', '24h')})"),
            roi("team_workload", "24h", ("team, workload", "roimon_value_total")),
            rec("cluster:roimon_value:increase24h",
                "sum by (cluster, currency) (instance:roimon_value:increase24h)"),
            rec("cluster:roimon_cost:increase24h",
                "sum by (cluster, currency) (instance:roimon_cost:increase24h)"),
            roi("cluster", "24h"),
            rec(":roimon_value:increase24h", "sum by (currency) (instance:roimon_value:increase24h)"),
            rec(":roimon_cost:increase24h", "sum by (currency) (instance:roimon_cost:increase24h)"),
            roi("", "24h"),
        ],
    },
    {
        "name": "roimon-fleet-windows",
        "_comment": (
            "Every window the daemons export ([roi] windows, e.g. 5m .. 30d), from their\n"
            "gauges: needs no 30 days of samples here. Fleet ROI per window from sums."
        ),
        "rules": [
            rec("window:roimon_window_value:sum", "sum by (window, currency) (roimon_window_value)"),
            rec("window:roimon_window_cost:sum", "sum by (window, currency) (roimon_window_cost)"),
            rec("window:roimon_roi:ratio",
                "(window:roimon_window_value:sum - window:roimon_window_cost:sum)\n"
                "  / (window:roimon_window_cost:sum > 0)\n"),
        ],
    },
    {
        "name": "roimon-fleet-owner-windows",
        "_comment": (
            "Each owner over every window the daemons export, Σ over nodes: the owner\n"
            "ROI the alerts read. Fleet ROI = Σ window value / Σ window cost, recorded\n"
            "only for owners some daemon has a value source for (a roimon_value_total\n"
            "series) and with cost > 0, as the daemons do. The span is the least any\n"
            "daemon's window covers (a young daemon's window is shorter than its label)."
        ),
        "rules": [
            rec("team_workload:roimon_owner_window_value:sum",
                "sum by (window, team, workload, currency) (roimon_owner_window_value)"),
            rec("team_workload:roimon_owner_window_cost:sum",
                "sum by (window, team, workload, currency) (roimon_owner_window_cost)"),
            rec("team_workload:roimon_owner_roi:ratio",
                "(\n  team_workload:roimon_owner_window_value:sum - team_workload:roimon_owner_window_cost:sum\n)\n"
                "  / (team_workload:roimon_owner_window_cost:sum > 0)\n"
                "and on (team, workload)\n  roimon_value_total\n"),
            rec("team_workload:roimon_window_span_seconds:min",
                "min by (window, team, workload) (\n"
                "  roimon_owner_window_cost * 0\n"
                "  + on (cluster, job, instance, window) group_left\n"
                "    roimon_window_span_seconds\n)\n",
                "Seconds the owner's window covers on the daemon with the least history."),
            rec("team_workload:roimon_owner_roi_baseline:ratio",
                "sum by (window, team, workload) (\n"
                "  roimon_owner_roi_baseline_ratio\n"
                "  * on (cluster, job, instance, window, team, workload)\n"
                "    roimon_owner_window_cost\n)\n"
                "  / (\n"
                "    sum by (window, team, workload) (\n"
                "      roimon_owner_window_cost\n"
                "      and on (cluster, job, instance, window, team, workload)\n"
                "        roimon_owner_roi_baseline_ratio\n"
                "    ) > 0\n"
                "  )\n",
                "Each daemon's baseline of the owner's ROI, weighted by the owner's cost there."),
            rec("team_workload:roimon_owner_roi_baseline_span_seconds:min",
                "min by (window, team, workload) (roimon_owner_roi_baseline_span_seconds)"),
            rec("instance_team_workload:roimon_value_not_measured:max",
                "max by (cluster, job, instance, team, workload, target, reason) (\n"
                "  label_replace(\n"
                "    roimon_value_total * 0\n"
                "    + on (cluster, job, instance, source) group_left (target)\n"
                "      label_replace(roimon_value_target_up == 0, \"source\", \"$1\", \"target\", \"(.+)\"),\n"
                "    \"reason\", \"target_down\", \"\", \"\"\n"
                "  )\n"
                ") + 1\n"
                "or\n"
                "max by (cluster, job, instance, team, workload, reason) (\n"
                "  label_replace(\n"
                "    " + win("roimon_owner_window_cost", C["measured_window"]) + " > 0\n"
                "    unless on (team, workload) roimon_value_total,\n"
                "    \"reason\", \"no_value_source\", \"\", \"\"\n"
                "  )\n"
                ") * 0 + 1\n",
                "1 for an owner whose value is not measured on a daemon: a value target that\n"
                "fed it is down (reason target_down, with the target), or it has cost and no\n"
                "daemon has any value source for it (reason no_value_source). The ROI alerts\n"
                "are silent for such an owner (unless), RoimonValueNotMeasured speaks."),
        ],
    },
    {
        "name": "roimon-fleet-alerts",
        "rules": [
            alert(
                "RoimonRoiBelowThreshold",
                f"{win('team_workload:roimon_owner_roi:ratio', RW)} < {C['roi_min']}\n"
                "and on (team, workload)\n"
                f"  {win('team_workload:roimon_window_span_seconds:min', RW)} >= {C['min_roi_seconds']}\n"
                f"{UNLESS_NOT_MEASURED}",
                "15m", "warning",
                f"{{{{ $labels.team }}}}/{{{{ $labels.workload }}}} is losing money: {RW} ROI below {C['roi_min']}",
                "The financial ROI of team {{ $labels.team }}, workload {{ $labels.workload }} "
                f"over the daemons' {RW} window is {{{{ $value | humanizePercentage }}}} (threshold {C['roi_min'] * 100:g} %): "
                "value " + owner_window_query("team_workload:roimon_owner_window_value:sum", RW)
                + " {{ $labels.currency }} against cost "
                + owner_window_query("team_workload:roimon_owner_window_cost:sum", RW)
                + " {{ $labels.currency }}, over "
                + owner_window_query("team_workload:roimon_window_span_seconds:min", RW, "humanizeDuration", False)
                + " of data.",
                f"An owner's financial ROI over the daemons' {RW} window (Σ value / Σ cost of\n"
                "their gauges over every node) has been below the threshold for 15 minutes.\n"
                "Works from the first hour: the window uses the history it has, at least\n"
                "min_roi_seconds. A Prometheus restart does not change it (no increase()).\n"
                "Owners without any value source have no ROI and never fire; an owner whose\n"
                "value is not measured (RoimonValueNotMeasured) does not either.",
                extra_labels=None,
            ),
            alert(
                "RoimonOwnerRoiDroppedAgainstBaseline",
                "(\n"
                f"  1 - {win('team_workload:roimon_owner_roi:ratio', BW)}\n"
                "        / on (window, team, workload) group_left ()\n"
                f"          ({win('team_workload:roimon_owner_roi_baseline:ratio', BW)} > 0)\n"
                f") > {C['roi_drop']}\n"
                "and on (team, workload)\n"
                f"  {win('team_workload:roimon_owner_roi_baseline_span_seconds:min', BW)} >= {C['min_roi_seconds']}\n"
                f"{UNLESS_NOT_MEASURED}",
                "15m", "warning",
                "ROI of {{ $labels.team }}/{{ $labels.workload }} dropped {{ $value | humanizePercentage }} below its baseline",
                f"The {BW} ROI of team {{{{ $labels.team }}}}, workload {{{{ $labels.workload }}}} is "
                + owner_window_query("team_workload:roimon_owner_roi:ratio", BW, "humanizePercentage")
                + ", against its trailing baseline of "
                + owner_window_query("team_workload:roimon_owner_roi_baseline:ratio", BW, "humanizePercentage", False)
                + " (resting on "
                + owner_window_query("team_workload:roimon_owner_roi_baseline_span_seconds:min", BW, "humanizeDuration", False)
                + f" of history): {{{{ $value | humanizePercentage }}}} lower (threshold {C['roi_drop'] * 100:g} %).",
                f"An owner's ROI over the {BW} window fell by more than the threshold against\n"
                "its trailing baseline (each daemon's EWMA of the owner's ROI, one-day time\n"
                "constant, weighted by the owner's cost on each daemon). Works from the first\n"
                "hour: the baseline uses the history it has, at least min_roi_seconds. Only a\n"
                "positive baseline counts. $value = 1 - ROI / baseline.",
            ),
            alert(
                "RoimonValueStoppedWhileCostAccrues",
                f"{win('team_workload:roimon_owner_window_cost:sum', SW)} > 0\n"
                "and on (team, workload, currency)\n"
                f"  {win('team_workload:roimon_owner_window_value:sum', SW)} == 0\n"
                "and on (team, workload, currency)\n"
                f"  {win('team_workload:roimon_owner_window_value:sum', HW)} > 0\n"
                "and on (team, workload)\n"
                f"  {win('team_workload:roimon_window_span_seconds:min', SW)} >= {SW_SECONDS}\n"
                f"{UNLESS_NOT_MEASURED}",
                "3m", "warning",
                "{{ $labels.team }}/{{ $labels.workload }} produces no value while its GPUs cost money",
                "Team {{ $labels.team }}, workload {{ $labels.workload }} has produced no value "
                f"over the daemons' {SW} window while its GPUs accrued {{{{ $value | printf \"%.2f\" }}}} {{{{ $labels.currency }}}} "
                f"of cost; it did produce value in the {HW} window (its inference servers answer: value is measured, none comes).",
                f"Cost accrues and the owner's value over the daemons' shortest window ({SW}) is 0,\n"
                f"although it produced value over the {HW} window (training jobs never fire).\n"
                f"Fires within 10 minutes of the stop: the {SW} window empties {SW} after the last\n"
                "value, plus the 3 minutes `for`. Silent while the value is not measured\n"
                "(RoimonValueNotMeasured) and while a daemon's window is younger than its length.\n"
                "Owners whose value arrives in batches need a longer short_window.",
            ),
            alert(
                "RoimonValueNotMeasured",
                "instance_team_workload:roimon_value_not_measured:max\n",
                "10m", "warning",
                "The value of {{ $labels.team }}/{{ $labels.workload }} on {{ $labels.instance }} is not measured",
                "roimon on {{ $labels.instance }} does not measure the value of team {{ $labels.team }}, "
                "workload {{ $labels.workload }}: "
                "{{ if eq $labels.reason \"target_down\" }}its value target {{ $labels.target }} has failed every scrape"
                "{{ else }}it has cost and no value source on any node (no [[value.scrape]] target and nothing pushed)"
                "{{ end }} for 10 minutes. Its ROI is unknown, not a loss: the ROI alerts are silent for it meanwhile.",
                "An owner's value is not measured: a value target that fed it is down or\n"
                "stale (reason target_down), or it has cost and no value source anywhere\n"
                "(reason no_value_source). Its own alert, so that a dead exporter never pages\n"
                "as a loss: every ROI alert for the owner has `unless` on this.",
            ),
        ],
    },
]

# ---------------------------------------------------------------------------
# finance: budgets and prices
# ---------------------------------------------------------------------------
TW = "team, workload, currency"
FINANCE_GROUPS = [
    {
        "name": "roimon-finance",
        "_comment": (
            "Budgets across nodes. Every node exports its own month-to-date spend and\n"
            "forecast for each [[budget]] it is configured with; the budget itself is\n"
            "the same figure on every node (configure [[budget]] identically\n"
            "fleet-wide), so spend and forecast add up and the budget is their max.\n"
            "A team-wide budget has workload=\"\"."
        ),
        "rules": [
            rec("team_workload:roimon_budget_spent:sum", f"sum by ({TW}) (roimon_budget_spent)"),
            rec("team_workload:roimon_budget_forecast:sum", f"sum by ({TW}) (roimon_budget_forecast)"),
            rec("team_workload:roimon_budget_monthly:max", f"max by ({TW}) (roimon_budget_monthly)"),
            rec("team_workload:roimon_budget_spent:ratio",
                "team_workload:roimon_budget_spent:sum\n  / (team_workload:roimon_budget_monthly:max > 0)\n",
                "Share of the month's budget spent (1 = all of it)."),
            rec("team_workload:roimon_budget_forecast:ratio",
                "team_workload:roimon_budget_forecast:sum\n  / (team_workload:roimon_budget_monthly:max > 0)\n",
                "Month-end spend at the current run rate, as a share of the budget."),
            rec("team_workload:roimon_budget_forecast_basis_seconds:min",
                f"min by ({TW}) (\n"
                "  roimon_budget_forecast * 0\n"
                "  + on (cluster, job, instance) group_left\n"
                "    roimon_budget_forecast_basis_seconds\n)\n",
                "Seconds of spend the forecast rests on, on the daemon with the least."),
        ],
    },
    {
        "name": "roimon-finance-alerts",
        "rules": [
            alert(
                "RoimonBudgetNearlySpent",
                f"team_workload:roimon_budget_spent:ratio >= {C['budget_warn_ratio']} < 1\n",
                "15m", "warning",
                "{{ $labels.team }}{{ with $labels.workload }}/{{ . }}{{ end }} has spent {{ $value | humanizePercentage }} of its monthly budget",
                "Team {{ $labels.team }}{{ with $labels.workload }}, workload {{ . }}{{ else }} (team-wide budget){{ end }} "
                "has spent {{ $value | humanizePercentage }} of its monthly budget of "
                + value_query('"team_workload:roimon_budget_monthly:max{team=%q,workload=%q,currency=%q}"' + OWNER_QUERY_ARGS)
                + f" {{{{ $labels.currency }}}} (threshold {C['budget_warn_ratio'] * 100:g} %).",
                "Month-to-date spend reached the warning share of the monthly budget\n"
                "(and is not over it yet: RoimonBudgetOverrun takes over at 100 %).",
            ),
            alert(
                "RoimonBudgetForecastOverrun",
                "team_workload:roimon_budget_forecast:ratio > 1\n"
                "and on (team, workload, currency)\n"
                f"  team_workload:roimon_budget_forecast_basis_seconds:min >= {C['min_forecast_seconds']}\n"
                "unless on (team, workload, currency)\n"
                "  team_workload:roimon_budget_spent:ratio >= 1\n",
                "15m", "warning",
                "{{ $labels.team }}{{ with $labels.workload }}/{{ . }}{{ end }} will overrun its monthly budget at the current rate",
                "At its current run rate, team {{ $labels.team }}{{ with $labels.workload }}, workload {{ . }}{{ else }} (team-wide budget){{ end }} "
                "ends the month at {{ $value | humanizePercentage }} of its budget of "
                + value_query('"team_workload:roimon_budget_monthly:max{team=%q,workload=%q,currency=%q}"' + OWNER_QUERY_ARGS)
                + " {{ $labels.currency }}, from a run rate over the last "
                + "{{ with printf \"team_workload:roimon_budget_forecast_basis_seconds:min{team=%q,workload=%q,currency=%q}\""
                + OWNER_QUERY_ARGS + " | query }}{{ . | first | value | humanizeDuration }}{{ end }}.",
                "The month-end forecast (spend so far plus the current run rate) exceeds\n"
                "the budget for 15 minutes, once every daemon's run rate rests on at least\n"
                "min_forecast_seconds of spend (roimon_budget_forecast_basis_seconds: a\n"
                "forecast from seconds of data is no forecast); silent once the budget is\n"
                "overrun already.",
            ),
            alert(
                "RoimonBudgetOverrun",
                "team_workload:roimon_budget_spent:ratio >= 1\n",
                "5m", "critical",
                "{{ $labels.team }}{{ with $labels.workload }}/{{ . }}{{ end }} has overrun its monthly budget",
                "Team {{ $labels.team }}{{ with $labels.workload }}, workload {{ . }}{{ else }} (team-wide budget){{ end }} has spent "
                "{{ $value | humanizePercentage }} of its monthly budget of "
                + value_query('"team_workload:roimon_budget_monthly:max{team=%q,workload=%q,currency=%q}"' + OWNER_QUERY_ARGS)
                + " {{ $labels.currency }}.",
                "Month-to-date spend is at or above the monthly budget.",
            ),
            alert(
                "RoimonElectricityPriceSpike",
                "max without (basis) (roimon_electricity_price_per_kwh)\n"
                f"  > {C['price_spike_factor']} * (\n"
                "    avg without (basis) (avg_over_time(roimon_electricity_price_per_kwh[24h])) > 0\n"
                "  )\n",
                "15m", "warning",
                "Electricity on {{ $labels.instance }} costs over "
                f"{C['price_spike_factor']}x its 24 h average",
                "The price in force on {{ $labels.instance }} ({{ $labels.source }}) is "
                "{{ $value | printf \"%.4f\" }} {{ $labels.currency }}/kWh, more than "
                f"{C['price_spike_factor']} times its average over the last 24 h.",
                "The price in force is more than the factor above its trailing 24 h average\n"
                "(only where that average is positive). A signal to defer flexible work.",
            ),
        ],
    },
]

# ---------------------------------------------------------------------------
# operations: is roimon measuring?
# ---------------------------------------------------------------------------
OWNER_OF_GPU = (
    "* on (cluster, job, instance, gpu_uuid) group_left (team, workload, model)\n"
    "  roimon_gpu_info\n"
)
OPS_GROUPS = [
    {
        "name": "roimon-operations-alerts",
        "rules": [
            alert(
                "RoimonDown",
                f"up{{{C['job_selector']}}} == 0\n",
                "5m", "critical",
                "Prometheus cannot scrape roimon on {{ $labels.instance }}",
                "The scrapes of roimon on {{ $labels.instance }} (job {{ $labels.job }}) have failed "
                "for 5 minutes. roimon keeps counting while it is not scraped (counters, not samples), "
                "but nothing on this node is measured if the daemon is down.",
                "The scrape target is down: the daemon stopped, the port is closed, or TLS/auth fails.",
            ),
            alert(
                "RoimonCollectorDown",
                "roimon_collector_up{collector!~\"price|carbon|nvml\"} == 0\n"
                "or\n"
                "(\n"
                "  roimon_collector_up{collector=\"nvml\"} == 0\n"
                "  and on (cluster, job, instance) count by (cluster, job, instance) (roimon_gpu_info) > 0\n"
                ")\n",
                "10m", "warning",
                "roimon collector {{ $labels.collector }} on {{ $labels.instance }} fails",
                "The {{ $labels.collector }} collector of roimon on {{ $labels.instance }} has failed "
                "every sample for 10 minutes: its devices' time is counted as unaccounted and their "
                "energy is not priced meanwhile.",
                "A sampling collector (nvml, host) fails. nvml only where the node knows GPUs:\n"
                "a machine without NVML runs with collector_up{collector=\"nvml\"} 0 by design.\n"
                "The price and carbon feeds have their own alerts.",
            ),
            alert(
                "RoimonGpuLost",
                f"(roimon_gpu_up == 0)\n{OWNER_OF_GPU}",
                "5m", "critical",
                "GPU {{ $labels.gpu_uuid }} on {{ $labels.instance }} no longer answers",
                "NVML no longer reports GPU {{ $labels.gpu_uuid }} (index {{ $labels.gpu }}, "
                "{{ $labels.model }}, owner {{ $labels.team }}/{{ $labels.workload }}) on "
                "{{ $labels.instance }} for 5 minutes: it fell off the bus, was reset or the driver "
                "lost it. Its time is unaccounted.",
                "A GPU roimon knew is not present any more (roimon_gpu_up 0).",
            ),
            alert(
                "RoimonIdleGpuBurningPower",
                f"(\n  roimon_gpu_power_watts > {C['idle_power_watts']}\n"
                f"  and on (cluster, job, instance, gpu_uuid) roimon_gpu_utilization_ratio < {C['idle_utilization']}\n"
                f")\n{OWNER_OF_GPU}",
                "30m", "warning",
                "Idle GPU {{ $labels.gpu_uuid }} on {{ $labels.instance }} draws {{ $value | printf \"%.0f\" }} W",
                "GPU {{ $labels.gpu_uuid }} on {{ $labels.instance }} (owner {{ $labels.team }}/"
                f"{{{{ $labels.workload }}}}) has been below {C['idle_utilization'] * 100:g} % utilisation for 30 minutes "
                f"while drawing {{{{ $value | printf \"%.0f\" }}}} W (threshold {C['idle_power_watts']} W): "
                "money and energy for no work.",
                "Utilisation about 0 while the power stays above the threshold: a stuck\n"
                "process holding clocks up, or a GPU reserved and unused.",
            ),
            alert(
                "RoimonUnaccountedTimeRising",
                f"rate(roimon_unaccounted_seconds_total[15m]) > {C['unaccounted_ratio']}\n"
                "or\n"
                f"rate(roimon_host_unaccounted_seconds_total[15m]) > {C['unaccounted_ratio']}\n",
                "15m", "warning",
                "roimon on {{ $labels.instance }} misses readings{{ with $labels.gpu_uuid }} for GPU {{ . }}{{ end }}",
                "Over the last 15 minutes {{ $value | humanizePercentage }} of the time on "
                "{{ $labels.instance }}{{ with $labels.gpu_uuid }} for GPU {{ . }}{{ else }} for the host{{ end }} "
                f"had no usable reading (threshold {C['unaccounted_ratio'] * 100:g} %): that energy is not "
                "priced, the gap shows in roimon_unaccounted_seconds_total.",
                "Time without a usable reading grows (collector timeouts, gaps longer than\n"
                "max_gap_intervals, a GPU not answering).",
            ),
            alert(
                "RoimonCheckpointFailing",
                f"roimon_checkpoint_consecutive_failures >= {C['checkpoint_failures']}\n",
                "5m", "critical",
                "roimon on {{ $labels.instance }} cannot write its checkpoint",
                "The last {{ $value | printf \"%.0f\" }} checkpoint writes of roimon on "
                "{{ $labels.instance }} failed: counters on /metrics stay at the last values on disk, "
                "and a restart now would resume from there.",
                "Checkpoint writes fail in a row (disk full, read-only, permissions).",
            ),
            alert(
                "RoimonElectricityPriceStale",
                f"roimon_electricity_price_age_seconds > {C['price_stale_seconds']}\n"
                "or on (cluster, job, instance)\n"
                "  roimon_collector_up{collector=\"price\"} == 0\n",
                "30m", "warning",
                "Electricity price feed of roimon on {{ $labels.instance }} fails or is stale",
                "roimon on {{ $labels.instance }} prices energy with a schedule fetched "
                "{{ $value | humanizeDuration }} ago, or its price feed has failed for 30 minutes "
                "(then $value is 0). Without a fresh schedule it uses the last known slots, then "
                f"the fallback price (threshold {C['price_stale_seconds'] // 3600} h).",
                "The live price source has not been fetched for hours, or its fetches fail.",
            ),
            alert(
                "RoimonCarbonFeedDown",
                f"roimon_grid_carbon_intensity_age_seconds > {C['carbon_stale_seconds']}\n"
                "or on (cluster, job, instance)\n"
                "  roimon_collector_up{collector=\"carbon\"} == 0\n",
                "30m", "warning",
                "Grid carbon feed of roimon on {{ $labels.instance }} fails or is stale",
                "roimon on {{ $labels.instance }} uses a carbon intensity fetched "
                "{{ $value | humanizeDuration }} ago, or its carbon feed has failed for 30 minutes "
                "(then $value is 0): emissions and the carbon cost component are estimated from stale "
                f"or fallback figures (threshold {C['carbon_stale_seconds'] // 3600} h).",
                "The grid carbon intensity feed fails or its data is old.",
            ),
            alert(
                "RoimonValueTargetDown",
                "roimon_value_target_up == 0\n",
                "10m", "warning",
                "roimon on {{ $labels.instance }} cannot scrape value target {{ $labels.target }}",
                "The last scrapes of the inference server {{ $labels.target }} by roimon on "
                "{{ $labels.instance }} have failed for 10 minutes "
                "(roimon_value_target_errors_total{target=\"{{ $labels.target }}\"} counts the failures); "
                "the value it produces is not counted meanwhile.",
                "roimon cannot scrape an inference server it counts value from.",
            ),
            alert(
                "RoimonAllValueTargetsDown",
                "max without (target) (roimon_value_target_up) == 0\n",
                "10m", "critical",
                "roimon on {{ $labels.instance }} cannot scrape any value target",
                "Every inference server roimon on {{ $labels.instance }} counts value from has "
                "been unreachable for 10 minutes: the node's value is not measured (its "
                "roimon_roi_ratio reads as a loss; the ROI alerts are silent meanwhile).",
                "Every value target of a node is down.",
            ),
            alert(
                "RoimonInfluxdbBufferFilling",
                "roimon_influxdb_buffer_bytes\n"
                f"  / (roimon_influxdb_buffer_capacity_bytes > 0) > {C['influx_buffer_ratio']}\n",
                "10m", "warning",
                "InfluxDB write buffer of roimon on {{ $labels.instance }} is {{ $value | humanizePercentage }} full",
                "roimon on {{ $labels.instance }} holds {{ $value | humanizePercentage }} of its InfluxDB "
                "buffer in unsent points (threshold "
                f"{C['influx_buffer_ratio'] * 100:g} %); once full, new points are dropped "
                "(roimon_influxdb_points_dropped_total{reason=\"buffer_full\"}).",
                "Points for InfluxDB pile up: writes fail or are slower than the points come.",
            ),
            alert(
                "RoimonInfluxdbWritesFailing",
                "roimon_influxdb_up == 0\n",
                "15m", "warning",
                "roimon on {{ $labels.instance }} cannot write to InfluxDB",
                "The InfluxDB writes of roimon on {{ $labels.instance }} have failed for 15 minutes; "
                "points are buffered (roimon_influxdb_buffer_bytes) and retried.",
                "The last InfluxDB write attempts failed (roimon_influxdb_up 0).",
            ),
            alert(
                "RoimonInfluxdbPointsDropped",
                "increase(roimon_influxdb_points_dropped_total[15m]) > 0\n",
                "0m", "warning",
                "roimon on {{ $labels.instance }} dropped InfluxDB points ({{ $labels.reason }})",
                "roimon on {{ $labels.instance }} dropped points meant for InfluxDB in the last "
                "15 minutes (reason {{ $labels.reason }}): they will never arrive. The node's "
                "counters and ledger keep the full figures.",
                "Points for InfluxDB were lost for good: buffer full, refused by the server, or a corrupt buffer.",
            ),
            alert(
                "RoimonWebConfigReloadFailing",
                "increase(roimon_web_config_reload_errors_total[15m]) > 0\n",
                "0m", "warning",
                "roimon on {{ $labels.instance }} cannot reload its web config",
                "A changed web config file (or certificate) of roimon on {{ $labels.instance }} "
                "failed to load in the last 15 minutes; the previous TLS and basic auth "
                "settings stay in force until a valid file is in place.",
                "A broken --web.config.file (or certificate) was refused; the old one is still in force.",
            ),
        ],
    },
]

FILES = {
    "roimon-node.yml": (
        "roimon node rules: per-daemon rates, ROI and unit economics, and the node ROI alert.",
        NODE_GROUPS,
    ),
    "roimon-fleet.yml": (
        "roimon fleet rules: sums per cluster and owner across nodes, fleet ROI, owner ROI alerts.\n"
        "Needs roimon-node.yml (the instance:* rules).",
        FLEET_GROUPS,
    ),
    "roimon-finance.yml": (
        "roimon finance rules: budgets across nodes and their alerts, price spikes.",
        FINANCE_GROUPS,
    ),
    "roimon-operations.yml": (
        "roimon operations alerts: scrape, collectors, GPUs, feeds, checkpoint, InfluxDB.",
        OPS_GROUPS,
    ),
}


def all_groups():
    return [g for _, (_, groups) in FILES.items() for g in groups]
