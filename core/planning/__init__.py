"""Maintenance planning: from each engine's RUL distribution to a week in the shop, under capacity.

- :mod:`core.planning.weeks`: calendar weeks, utilisation (cycles per day) and the cycles until each slot;
- :mod:`core.planning.optimise`: the assignment of engines to weeks at the lowest total cost (HiGHS);
- :mod:`core.planning.planner`: expected costs from the distributions, the plan, its reasons and summaries;
- :mod:`core.planning.policies`: the baselines (a fixed RUL threshold, "Inspect HIGH", nothing);
- :mod:`core.planning.simulation`: policies simulated week by week on engines whose failure times are known;
- :mod:`core.planning.fleet`, :mod:`core.planning.utilisation`, :mod:`core.planning.accepted`: the store's side
  (engines in service with their stored scores, utilisation per dataset, accepted plans);
- :mod:`core.planning.exports`: the plan as CSV and a week's printable work package;
- :mod:`core.planning.service`: a plan of the fleet in service, as the page, the CLI and the API ask for it.
"""
