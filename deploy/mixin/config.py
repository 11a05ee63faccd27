"""Settings of the roimon mixin: selectors, thresholds and links.

Change a value here, run `python3 deploy/mixin/build.py` and commit the
regenerated files (CI fails when they differ from this source). The promtool
unit tests in deploy/prometheus/rules/tests/ pin the defaults: adjust them
with any threshold you change.
"""

CONFIG = {
    # Where every alert's runbook_url points: <runbook_base>#<alert name in
    # lower case>, one section per alert of docs/runbooks.md. Point it at
    # where your copy of docs/runbooks.md is served (a wiki, your fork's
    # docs/runbooks.md on a code host). The committed files keep this
    # placeholder; override it without editing here where the rules are
    # deployed: the Helm value prometheusRule.runbookBase, or for
    # docker-compose and plain Prometheus
    #   python3 deploy/mixin/build.py --runbook-base URL --rules-out DIR
    # (README, "Alerts").
    "runbook_base": "https://example.invalid/roimon/docs/runbooks.md",
    # How the roimon scrape job is selected (scrape health only: every other
    # rule reads roimon_* families, whatever the job is called).
    "job_selector": 'job="roimon"',
    # Labels that identify one roimon daemon. `cluster` comes from the scrape
    # configuration (a target label) or from an edge Prometheus's
    # external_labels (remote_write, federation); where it is missing it is
    # empty and every rule still works.
    "node_labels": "cluster, job, instance",
    # --- the daemons' rolling windows the rules read --------------------------
    # The ROI rules read the daemons' own window gauges (roimon_window_*,
    # roimon_owner_window_*, roimon_*roi*), never increase() over this
    # Prometheus's history: a Prometheus restart or a gap in its data does not
    # change an ROI. Each label must be one of [roi] windows of every daemon
    # (the default config has 5m, 1h, 24h, 7d, 30d).
    "short_window": "5m",  # RoimonValueStoppedWhileCostAccrues: the shortest window
    "history_window": "24h",  # ... and "it did produce value" over this one
    "roi_window": "24h",  # RoimonRoiBelowThreshold
    "baseline_window": "1h",  # RoimonRoiDroppedAgainstBaseline, RoimonOwnerRoiDroppedAgainstBaseline
    "measured_window": "1h",  # RoimonValueNotMeasured: an owner with cost in this window
    # Least data an alert rests on: the ROI and baseline alerts wait until the
    # window (or the baseline) covers this many seconds; the budget forecast
    # alert until the forecast's run rate rests on this many.
    "min_roi_seconds": 3600,
    "min_forecast_seconds": 3600,
    # --- thresholds ---------------------------------------------------------
    "roi_min": 0,  # RoimonRoiBelowThreshold: ROI over roi_window below this
    "roi_drop": 0.5,  # RoimonRoiDroppedAgainstBaseline: relative drop
    "budget_warn_ratio": 0.8,  # RoimonBudgetNearlySpent: share of the month's budget
    "price_stale_seconds": 6 * 3600,  # RoimonElectricityPriceStale
    "carbon_stale_seconds": 6 * 3600,  # RoimonCarbonFeedDown
    "price_spike_factor": 2,  # RoimonElectricityPriceSpike: price vs its 24 h average
    "idle_utilization": 0.05,  # RoimonIdleGpuBurningPower: "idle" below this
    "idle_power_watts": 100,  # ... while drawing more than this
    "unaccounted_ratio": 0.05,  # RoimonUnaccountedTimeRising: share of wall time
    "checkpoint_failures": 3,  # RoimonCheckpointFailing: failed writes in a row
    "influx_buffer_ratio": 0.8,  # RoimonInfluxdbBufferFilling
}
