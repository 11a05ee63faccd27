"""roimon's Grafana dashboards: node, fleet and finance, built here so that
they share variables, links and conventions and cannot drift (CI runs
build.py --check). Every panel has a description and a no-data text saying
what to configure; every query reads roimon's families or the mixin's
recording rules (crates/roimon/tests/grafana.rs checks both).

Query extraction for outside checks: every query is the `expr` of a panel
target (panels nested in rows included), written with the variables
$cluster, $instance, $team, $__rate_interval and $__range.
"""

import copy

import node_panels

DS = {"type": "prometheus", "uid": "${datasource}"}
LINKS = [
    {
        "type": "dashboards",
        "title": "roimon",
        "tags": ["roimon"],
        "asDropdown": False,
        "includeVars": True,
        "keepTime": False,
        "icon": "external link",
        "targetBlank": False,
        "tooltip": "The other roimon dashboards",
        "url": "",
    }
]


def variable(name, label, query, hide=0):
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "definition": query,
        "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "hide": hide,
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "options": [],
        "refresh": 2,
        "regex": "",
        "sort": 1,
        "skipUrlSync": False,
    }


DATASOURCE = {
    "name": "datasource",
    "label": "Data source",
    "type": "datasource",
    "query": "prometheus",
    # The provisioned datasource (grafana/provisioning); Grafana falls back to
    # the default Prometheus where no source has this uid.
    "current": {"selected": False, "text": "Prometheus", "value": "prometheus"},
    "hide": 0,
    "includeAll": False,
    "multi": False,
    "options": [],
    "refresh": 1,
    "regex": "",
    "skipUrlSync": False,
}
INSTANCE = variable("instance", "Node", "label_values(roimon_build_info, instance)")
CLUSTER = variable("cluster", "Cluster", "label_values(roimon_build_info, cluster)")
TEAM = variable("team", "Team", "label_values(roimon_gpu_cost_total, team)")


def _finish(panels):
    """Number panels and targets, add the datasource everywhere."""
    next_id = 1
    out = []

    def fix(p):
        nonlocal next_id
        p = copy.deepcopy(p)
        p = {"id": next_id, **p}
        next_id += 1
        if p["type"] != "row" or p.get("targets"):
            p.setdefault("datasource", DS)
        for i, t in enumerate(p.get("targets", [])):
            t.setdefault("refId", chr(ord("A") + i))
            p["targets"][i] = {"datasource": DS, **t}
        if "panels" in p:
            p["panels"] = [fix(c) for c in p["panels"]]
        return p

    for p in panels:
        out.append(fix(p))
    return out


def dashboard(meta, variables, panels):
    d = dict(meta)
    d["links"] = LINKS
    d["templating"] = {"list": [DATASOURCE, *variables]}
    d["panels"] = _finish(panels)
    return d


# --- panel builders for the generated dashboards -----------------------------


class Layout:
    """Places panels left to right, rows of 24 columns, top to bottom."""

    def __init__(self):
        self.x = self.y = self.row_h = 0
        self.panels = []

    def row(self, title):
        self._newline()
        self.panels.append(
            {"type": "row", "title": title, "collapsed": False, "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}, "panels": []}
        )
        self.y += 1

    def _newline(self):
        if self.x:
            self.y += self.row_h
            self.x = self.row_h = 0

    def add(self, panel, w, h):
        if self.x + w > 24:
            self._newline()
        panel["gridPos"] = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.x += w
        self.row_h = max(self.row_h, h)
        self.panels.append(panel)


def target(expr, legend="", instant=False, fmt=None):
    t = {"expr": expr, "legendFormat": legend, "range": not instant, "instant": instant}
    if fmt:
        t["format"] = fmt
    return t


def _defaults(unit, no_value, decimals=None, extra=None):
    d = {"unit": unit, "noValue": no_value}
    if decimals is not None:
        d["decimals"] = decimals
    d.update(extra or {})
    return d


def stat(title, description, no_value, targets, unit="none", decimals=None):
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "fieldConfig": {
            "defaults": _defaults(
                unit,
                no_value,
                decimals,
                {
                    "color": {"mode": "fixed", "fixedColor": "text"},
                    "thresholds": {"mode": "absolute", "steps": [{"color": "text", "value": None}]},
                },
            ),
            "overrides": [],
        },
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "area",
            "justifyMode": "auto",
            "textMode": "auto",
            "orientation": "auto",
        },
        "targets": targets,
    }


def timeseries(title, description, no_value, targets, unit="none", stack=False, decimals=None):
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "fieldConfig": {
            "defaults": _defaults(
                unit,
                no_value,
                decimals,
                {
                    "custom": {
                        "drawStyle": "line",
                        "lineWidth": 1,
                        "fillOpacity": 20 if stack else 0,
                        "showPoints": "never",
                        "spanNulls": False,
                        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
                    }
                },
            ),
            "overrides": [],
        },
        "options": {
            "legend": {"displayMode": "table", "placement": "right", "calcs": ["lastNotNull", "mean"], "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": targets,
    }


def bargauge(title, description, no_value, targets, unit="none", decimals=None, max_=None):
    extra = {"min": 0}
    if max_ is not None:
        extra["max"] = max_
        extra["thresholds"] = {
            "mode": "absolute",
            "steps": [
                {"color": "green", "value": None},
                {"color": "orange", "value": 0.8 * max_},
                {"color": "red", "value": max_},
            ],
        }
    return {
        "type": "bargauge",
        "title": title,
        "description": description,
        "fieldConfig": {"defaults": _defaults(unit, no_value, decimals, extra), "overrides": []},
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "orientation": "horizontal",
            "displayMode": "gradient",
            "showUnfilled": True,
        },
        "targets": targets,
    }


def table(title, description, no_value, targets, unit="none", decimals=None, merge=False):
    p = {
        "type": "table",
        "title": title,
        "description": description,
        "fieldConfig": {"defaults": _defaults(unit, no_value, decimals), "overrides": []},
        "options": {"showHeader": True, "cellHeight": "sm", "footer": {"show": False, "reducer": ["sum"], "fields": ""}},
        "targets": targets,
        "transformations": [
            {"id": "merge" if merge else "seriesToRows", "options": {}},
            {"id": "organize", "options": {"excludeByName": {"Time": True}}},
        ],
    }
    return p


# --- node ---------------------------------------------------------------------

I = 'instance=~"$instance"'
NO_INFLUX = "No InfluxDB writer: set [influxdb] url, org, bucket and token_env in roimon.toml."


def _node_extra(y):
    """Panels of features newer than the node dashboard's hand-made layout."""
    L = Layout()
    L.y = y
    L.row("Budgets and InfluxDB writer")
    L.add(bargauge("Budget spent on this node", "This node's month-to-date spend per configured [[budget]], as a "
                   "share of the monthly budget (the fleet view sums every node: the finance dashboard).",
                   "No budget: configure [[budget]] (team, monthly, optional workload) in roimon.toml.",
                   [target(f"roimon_budget_spent{{{I}}} / (roimon_budget_monthly{{{I}}} > 0)",
                           "{{instance}} {{team}}/{{workload}}", instant=True)], unit="percentunit", max_=1), 8, 8)
    L.add(timeseries("InfluxDB writer up", "1 when the last write to InfluxDB succeeded.", NO_INFLUX,
                     [target(f"roimon_influxdb_up{{{I}}}", "{{instance}}")]), 8, 8)
    L.add(timeseries("InfluxDB buffer fill", "Unsent points held for InfluxDB, as a share of the buffer's capacity; "
                     "at 100 % new points are dropped.", NO_INFLUX,
                     [target(f"roimon_influxdb_buffer_bytes{{{I}}} / (roimon_influxdb_buffer_capacity_bytes{{{I}}} > 0)",
                             "{{instance}}")], unit="percentunit"), 8, 8)
    L.add(timeseries("InfluxDB points written and dropped (per second)", "Points written, and points dropped by "
                     "reason (buffer_full, rejected).", NO_INFLUX,
                     [target(f"sum by (instance) (rate(roimon_influxdb_points_written_total{{{I}}}[$__rate_interval]))",
                             "{{instance}} written"),
                      target(f"sum by (instance, reason) (rate(roimon_influxdb_points_dropped_total{{{I}}}[$__rate_interval]))",
                             "{{instance}} dropped {{reason}}")], unit="cps"), 24, 8)
    return L.panels


def _bottom(panels):
    return max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)


NODE = dashboard(node_panels.META, [INSTANCE], node_panels.PANELS + _node_extra(_bottom(node_panels.PANELS)))

# --- fleet --------------------------------------------------------------------

C = 'cluster=~"$cluster"'
CT = 'cluster=~"$cluster",team=~"$team"'
# Raw series also honour the node selection (recorded ones are per cluster).
CI = 'cluster=~"$cluster",instance=~"$instance"'
CIT = 'cluster=~"$cluster",instance=~"$instance",team=~"$team"'
RULES_NOTE = (
    " Needs the mixin's recording rules (deploy/prometheus/rules/roimon-node.yml and "
    "roimon-fleet.yml) loaded in this Prometheus."
)
NO_RULES = "No data: load deploy/prometheus/rules/roimon-node.yml and roimon-fleet.yml into Prometheus (or no roimon is scraped)."


def _fleet():
    L = Layout()
    L.row("Fleet overview")
    L.add(stat("Nodes reporting", "roimon daemons scraped in the selected clusters (count of roimon_build_info).",
               "No roimon is scraped: check the scrape job (deploy/prometheus/prometheus.yml) and the $cluster selection.",
               [target(f"count(roimon_build_info{{{CI}}})", "nodes")]), 4, 4)
    L.add(stat("GPUs", "GPUs the daemons report (cluster:roimon_gpus:count)." + RULES_NOTE, NO_RULES,
               [target(f"sum(cluster:roimon_gpus:count{{{C}}})", "GPUs")]), 4, 4)
    L.add(stat("Cost rate (per hour)", "Σ over nodes of every cost component, money per hour, by currency." + RULES_NOTE,
               NO_RULES, [target(f"sum by (currency) (cluster:roimon_cost:rate5m{{{C}}}) * 3600", "{{currency}}/h")],
               decimals=2), 4, 4)
    L.add(stat("Value rate (per hour)", "Σ over nodes of the value produced, money per hour, by currency." + RULES_NOTE,
               "No value: no node has a value source ([[value.scrape]] or pushed value), or the rules are not loaded.",
               [target(f"sum by (currency) (cluster:roimon_value:rate5m{{{C}}}) * 3600", "{{currency}}/h")],
               decimals=2), 4, 4)
    L.add(stat("Fleet ROI (1 h)", "(Σvalue − Σcost) / Σcost over the last hour across the selected clusters: from sums, "
               "never an average of node ratios." + RULES_NOTE,
               "No ROI: no value source in the fleet, no cost in the last hour, or the rules are not loaded.",
               [target(f"(sum by (currency) (cluster:roimon_value:increase1h{{{C}}}) - sum by (currency) (cluster:roimon_cost:increase1h{{{C}}}))"
                       f" / (sum by (currency) (cluster:roimon_cost:increase1h{{{C}}}) > 0)", "{{currency}}")],
               unit="percentunit", decimals=1), 4, 4)
    L.add(stat("Collectors or GPUs down", "Collectors and feeds whose last sample failed plus GPUs that no longer "
               "answer, over the selected clusters (0 is healthy)." + RULES_NOTE, NO_RULES,
               [target(f"sum(cluster:roimon_collectors_down:sum{{{C}}}) + sum(cluster:roimon_gpus_down:sum{{{C}}})", "down")]), 4, 4)

    L.row("Per cluster")
    L.add(timeseries("Cost rate by cluster (per hour)", "Money per hour per cluster, every cost component." + RULES_NOTE,
                     NO_RULES, [target(f"cluster:roimon_cost:rate5m{{{C}}} * 3600", "{{cluster}} {{currency}}")],
                     unit="suffix:/h", stack=True), 12, 8)
    L.add(timeseries("Value rate by cluster (per hour)", "Money produced per hour per cluster." + RULES_NOTE,
                     "No value in these clusters: configure [[value.scrape]] or push value, and load the rules.",
                     [target(f"cluster:roimon_value:rate5m{{{C}}} * 3600", "{{cluster}} {{currency}}")],
                     unit="suffix:/h", stack=True), 12, 8)
    L.add(timeseries("ROI by cluster (1 h)", "Financial ROI per cluster over the last hour, (Σvalue − Σcost) / Σcost "
                     "over its nodes." + RULES_NOTE,
                     "No ROI: the clusters have no value source or no cost in the hour, or the rules are not loaded.",
                     [target(f"cluster:roimon_roi:ratio1h{{{C}}}", "{{cluster}} {{currency}}")], unit="percentunit"), 8, 8)
    L.add(timeseries("Facility power by cluster (W)", "IT energy × PUE per second, from the facility energy counters "
                     "of every node." + RULES_NOTE, NO_RULES,
                     [target(f"cluster:roimon_facility_energy_joules:rate5m{{{C}}}", "{{cluster}}")],
                     unit="watt", stack=True), 8, 8)
    L.add(timeseries("Unaccounted GPUs by cluster", "GPU-seconds per second without a usable reading: the number of "
                     "GPUs roimon is blind to right now (their energy is not priced)." + RULES_NOTE, NO_RULES,
                     [target(f"cluster:roimon_unaccounted_seconds:rate5m{{{C}}}", "{{cluster}}")]), 8, 8)

    L.row("Per team and workload")
    L.add(timeseries("Cost per team / workload (per hour)", "Money per hour attributed to each owner (GPU rows), "
                     "per cluster." + RULES_NOTE, NO_RULES,
                     [target(f"cluster_team_workload:roimon_gpu_cost:rate5m{{{CT}}} * 3600",
                             "{{cluster}} {{team}}/{{workload}} {{currency}}")], unit="suffix:/h", stack=True), 12, 8)
    L.add(timeseries("Value per team / workload (per hour)", "Money produced per hour per owner, per cluster." + RULES_NOTE,
                     "No value for these owners: configure [[value.scrape]] or push value with team/workload tags.",
                     [target(f"cluster_team_workload:roimon_value:rate5m{{{CT}}} * 3600",
                             "{{cluster}} {{team}}/{{workload}} {{currency}}")], unit="suffix:/h", stack=True), 12, 8)
    L.add(timeseries("ROI per team / workload (1 h)", "Financial ROI per owner and cluster over the last hour; owners "
                     "without a value source have none." + RULES_NOTE,
                     "No ROI: these owners have no value source or no cost in the hour, or the rules are not loaded.",
                     [target(f"cluster_team_workload:roimon_roi:ratio1h{{{CT}}}", "{{cluster}} {{team}}/{{workload}}")],
                     unit="percentunit"), 12, 8)
    L.add(timeseries("Owner ROI by window (daemons' windows)", "Financial ROI per owner over every window the daemons "
                     "export (5m … 30d), Σ window value / Σ window cost over every node: the figures the ROI alerts "
                     "read, equal to the daemons' /api/v1/summary and unchanged by a Prometheus restart, and "
                     "the cost-weighted baseline of each daemon's EWMA of the owner's ROI." + RULES_NOTE,
                     "No ROI: these owners have no value source or no cost in the windows, or the rules are not loaded.",
                     [target(f'team_workload:roimon_owner_roi:ratio{{team=~"$team"}}', "{{team}}/{{workload}} {{window}}"),
                      target(f'team_workload:roimon_owner_roi_baseline:ratio{{team=~"$team"}}',
                             "{{team}}/{{workload}} {{window}} baseline")],
                     unit="percentunit"), 12, 8)
    L.add(table("Owners whose value is not measured", "Owners whose ROI is unknown right now: a value target that fed "
                "them is down (reason target_down), or they have cost and no value source on any node "
                "(no_value_source). Their ROI alerts are silent meanwhile." + RULES_NOTE,
                "Every owner's value is measured.",
                [target(f'instance_team_workload:roimon_value_not_measured:max{{{CT}}}', instant=True, fmt="table")]), 12, 8)
    L.add(timeseries("Facility power per team / workload (W)", "Facility power (IT × PUE) attributed to each owner." + RULES_NOTE,
                     NO_RULES, [target(f"cluster_team_workload:roimon_gpu_facility_energy_joules:rate5m{{{CT}}}",
                                       "{{cluster}} {{team}}/{{workload}}")], unit="watt", stack=True), 12, 8)

    L.row("GPUs and data quality")
    L.add(table("Top 10 GPUs by cost (per hour)", "The ten GPUs costing the most money per hour now, with node and "
                "owner, from the raw counters.",
                "No GPU cost: no GPU is reported (no NVML, gpu.source = \"none\") in the selected clusters.",
                [target(f"topk(10, sum by (cluster, instance, gpu_uuid, team, workload, currency) "
                        f"(rate(roimon_gpu_cost_total{{{CIT}}}[$__rate_interval])) * 3600)", instant=True, fmt="table")],
                unit="suffix:/h", decimals=3), 12, 8)
    L.add(timeseries("Collectors down by cluster", "Collectors and feeds (nvml, host, price, carbon) whose last sample "
                     "failed, summed over the cluster's nodes. A node without NVML counts its nvml collector here." + RULES_NOTE,
                     NO_RULES, [target(f"cluster:roimon_collectors_down:sum{{{C}}}", "{{cluster}}")]), 6, 8)
    L.add(table("Collectors down (nodes)", "Each collector or feed down right now, with its node.",
                "Every collector is up on every node.",
                [target(f"roimon_collector_up{{{CI}}} == 0", instant=True, fmt="table")]), 6, 8)
    return L.panels


FLEET = dashboard(
    {
        "title": "roimon — fleet",
        "uid": "roimon-fleet",
        "description": "Cost, value, ROI and energy across every roimon node, per cluster and owner. "
        "Needs the recording rules of deploy/prometheus/rules/ (cluster comes from the scrape "
        "configuration or the edge Prometheus's external_labels).",
        "tags": ["roimon", "gpu", "cost", "fleet"],
        "editable": True,
        "graphTooltip": 1,
        "liveNow": False,
        "fiscalYearStartMonth": 0,
        "refresh": "1m",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-24h", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "weekStart": "",
        "annotations": {"list": []},
    },
    [CLUSTER, INSTANCE, TEAM],
    _fleet(),
)

# --- finance ------------------------------------------------------------------

NO_BUDGET = (
    "No budget: configure [[budget]] (team, monthly, optional workload) on every node and load "
    "deploy/prometheus/rules/roimon-finance.yml."
)


def _finance():
    L = Layout()
    L.row("Over the time range (default: this month so far)")
    L.add(stat("Cost", "Every cost component over the selected time range, Σ over nodes, by currency.",
               "No cost in the range: no roimon scraped in the selected clusters.",
               [target(f"sum by (currency) (increase(roimon_cost_total{{{C}}}[$__range]))", "{{currency}}", instant=True)],
               decimals=2), 4, 4)
    L.add(stat("Value", "Value produced over the time range, Σ over nodes, by currency.",
               "No value: no node has a value source ([[value.scrape]] or pushed value).",
               [target(f"sum by (currency) (increase(roimon_value_total{{{C}}}[$__range]))", "{{currency}}", instant=True)],
               decimals=2), 4, 4)
    L.add(stat("ROI", "(Σvalue − Σcost) / Σcost over the time range.",
               "No ROI: no value source, or no cost in the range.",
               [target(f"(sum by (currency) (increase(roimon_value_total{{{C}}}[$__range])) - sum by (currency) "
                       f"(increase(roimon_cost_total{{{C}}}[$__range]))) / (sum by (currency) "
                       f"(increase(roimon_cost_total{{{C}}}[$__range])) > 0)", "{{currency}}", instant=True)],
               unit="percentunit", decimals=1), 4, 4)
    L.add(stat("Credit (negative prices)", "Money earned back while the electricity price was negative, over the range.",
               "No credit: the price was never negative in the range (or the price source has no negative prices).",
               [target(f"sum by (currency) (increase(roimon_credit_total{{{C}}}[$__range]))", "{{currency}}", instant=True)],
               decimals=2), 4, 4)
    L.add(stat("Facility energy", "IT energy × PUE over the range, kWh.",
               "No energy: no roimon scraped in the selected clusters.",
               [target(f"sum(increase(roimon_facility_energy_joules_total{{{C}}}[$__range])) / 3.6e6", "kWh", instant=True)],
               unit="kwatth", decimals=1), 4, 4)
    L.add(stat("Emissions", "Greenhouse gas from the energy over the range, kg CO2e.",
               "No emissions: no carbon intensity configured ([carbon] source).",
               [target(f"sum(increase(roimon_emissions_grams_total{{{C}}}[$__range])) / 1000", "kg CO2e", instant=True)],
               unit="suffix:kgCO2e", decimals=1), 4, 4)

    L.row("Cost by owner and component")
    L.add(bargauge("Cost per team over the range", "Money attributed to each team over the time range, all "
                   "components, Σ over nodes.",
                   "No attributed cost: no GPU rows in the selected clusters and teams.",
                   [target(f"sort_desc(sum by (team, currency) (increase(roimon_gpu_cost_total{{{CT}}}[$__range])))",
                           "{{team}} {{currency}}", instant=True)], decimals=2), 8, 8)
    L.add(bargauge("Cost per team / workload over the range", "Money per owner over the time range.",
                   "No attributed cost: no GPU rows in the selected clusters and teams.",
                   [target(f"sort_desc(sum by (team, workload, currency) (increase(roimon_gpu_cost_total{{{CT}}}[$__range])))",
                           "{{team}}/{{workload}} {{currency}}", instant=True)], decimals=2), 8, 8)
    L.add(bargauge("Cost per component over the range", "Energy, capex, maintenance, staff and carbon over the "
                   "time range, Σ over nodes.", "No cost in the range: no roimon scraped in the selected clusters.",
                   [target(f"sum by (component, currency) (increase(roimon_cost_total{{{C}}}[$__range]))",
                           "{{component}} {{currency}}", instant=True)], decimals=2), 8, 8)
    L.add(timeseries("Cost per component (per hour)", "Money per hour by cost component, Σ over nodes.",
                     "No cost: no roimon scraped in the selected clusters.",
                     [target(f"sum by (component, currency) (rate(roimon_cost_total{{{C}}}[$__rate_interval])) * 3600",
                             "{{component}} {{currency}}")], unit="suffix:/h", stack=True), 12, 8)
    L.add(timeseries("Value against cost (per hour)", "Money produced and money spent per hour across the selected "
                     "clusters." + RULES_NOTE, NO_RULES,
                     [target(f"sum by (currency) (cluster:roimon_value:rate5m{{{C}}}) * 3600", "value {{currency}}"),
                      target(f"sum by (currency) (cluster:roimon_cost:rate5m{{{C}}}) * 3600", "cost {{currency}}")],
                     unit="suffix:/h"), 12, 8)

    L.row("Budgets (this month)")
    L.add(bargauge("Budget spent", "Month-to-date spend as a share of the monthly budget, per budget (team, and "
                   "workload where the budget names one; Σ over nodes).", NO_BUDGET,
                   [target('team_workload:roimon_budget_spent:ratio{team=~"$team"}', "{{team}}/{{workload}}", instant=True)],
                   unit="percentunit", max_=1), 8, 8)
    L.add(bargauge("Budget forecast", "Month-end spend at the current run rate as a share of the monthly budget.",
                   NO_BUDGET,
                   [target('team_workload:roimon_budget_forecast:ratio{team=~"$team"}', "{{team}}/{{workload}}", instant=True)],
                   unit="percentunit", max_=1), 8, 8)
    L.add(table("Budgets: monthly, spent, forecast", "Per budget, in its currency: the monthly budget, the spend so "
                "far and the month-end forecast, Σ over nodes.", NO_BUDGET,
                [target('team_workload:roimon_budget_monthly:max{team=~"$team"}', "monthly", instant=True, fmt="table"),
                 target('team_workload:roimon_budget_spent:sum{team=~"$team"}', "spent", instant=True, fmt="table"),
                 target('team_workload:roimon_budget_forecast:sum{team=~"$team"}', "forecast", instant=True, fmt="table")],
                decimals=2, merge=True), 8, 8)
    L.add(timeseries("Budget spend against budget", "Month-to-date spend and forecast over time, per budget, with "
                     "the monthly budget as a line.", NO_BUDGET,
                     [target('team_workload:roimon_budget_spent:sum{team=~"$team"}', "spent {{team}}/{{workload}}"),
                      target('team_workload:roimon_budget_forecast:sum{team=~"$team"}', "forecast {{team}}/{{workload}}"),
                      target('team_workload:roimon_budget_monthly:max{team=~"$team"}', "budget {{team}}/{{workload}}")]), 24, 8)

    L.row("Credit and emissions")
    L.add(bargauge("Credit per team over the range", "Money earned back at negative prices, per owner.",
                   "No credit: the price was never negative in the range.",
                   [target(f"sum by (team, workload, currency) (increase(roimon_gpu_credit_total{{{CT}}}[$__range]))",
                           "{{team}}/{{workload}} {{currency}}", instant=True)], decimals=2), 12, 8)
    L.add(bargauge("Emissions per team over the range (kg CO2e)", "Greenhouse gas attributed to each owner over the range.",
                   "No emissions: no carbon intensity configured ([carbon] source).",
                   [target(f"sum by (team, workload) (increase(roimon_gpu_emissions_grams_total{{{CT}}}[$__range])) / 1000",
                           "{{team}}/{{workload}}", instant=True)], unit="suffix:kgCO2e", decimals=1), 12, 8)
    return L.panels


FINANCE = dashboard(
    {
        "title": "roimon — finance",
        "uid": "roimon-finance",
        "description": "Month-to-date cost, value, budgets, credit and emissions across every roimon node, by "
        "team. The time range is the accounting period (default: this month so far); the ledger "
        "(roimon report) gives the same figures per hour for invoices.",
        "tags": ["roimon", "cost", "finance"],
        "editable": True,
        "graphTooltip": 1,
        "liveNow": False,
        "fiscalYearStartMonth": 0,
        "refresh": "5m",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now/M", "to": "now"},
        "timepicker": {},
        "timezone": "utc",
        "weekStart": "",
        "annotations": {"list": []},
    },
    [CLUSTER, INSTANCE, TEAM],
    _finance(),
)

ALL = {"roimon-node": NODE, "roimon-fleet": FLEET, "roimon-finance": FINANCE}
