"""ReplayFunction: the CLI's `dlq replay` as a Lambda, run by the schedule and on demand.

    sam remote invoke ReplayFunction --event-file events/replay.json
    {"maxMessages": 500, "dryRun": true, "kind": "retryable", "rate": 20}

The stack's schedule (template.yaml, ScheduledReplay) invokes it every few minutes with the scheduled
input: retryable envelopes that failed a while ago, a bounded number at a gentle rate, and those
that keep failing left for people. It returns the replay summary and reports what it did as metrics.
"""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from memory_bridge.config import ConfigError
from memory_bridge.replay import ReplayRequestError, options_from_event, replay_metrics
from memory_bridge.runtime import logger, replay_engine
from memory_bridge.runtime import replay_metrics as metrics


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        options = options_from_event(event, time_limit=context.get_remaining_time_in_millis() / 1000 - 30)
        engine = replay_engine()
    except (ReplayRequestError, ConfigError) as error:
        logger.error("replay not started", extra={"reason": str(error)})
        return {"error": str(error)}
    result = engine.run(options)
    figures = replay_metrics(result)
    for name, value in figures.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    if figures:
        metrics.flush_metrics()
    summary = result.to_json()
    log = logger.warning if result.counts.left_for_people else logger.info
    log("replay finished", extra={"counts": summary["counts"], "stopped": summary["stopped"]})
    return summary
