"""The evaluation over seeds: every metric as a mean with a 95 % interval, or a share of seeds."""
