"""ReplayFunction: the CLI's `dlq replay` as a Lambda, for teams that replay from the console or CI.

    sam remote invoke ReplayFunction --event-file events/replay.json
    {"maxMessages": 500, "dryRun": true, "kind": "retryable", "rate": 20}

No trigger of its own: it never runs by itself. It returns the replay summary.
"""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from memory_bridge.config import ConfigError
from memory_bridge.replay import ReplayRequestError, options_from_event
from memory_bridge.runtime import logger, replay_engine


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        options = options_from_event(event, time_limit=context.get_remaining_time_in_millis() / 1000 - 30)
        engine = replay_engine()
    except (ReplayRequestError, ConfigError) as error:
        logger.error("replay not started", extra={"reason": str(error)})
        return {"error": str(error)}
    summary = engine.run(options).to_json()
    logger.info("replay finished", extra={"counts": summary["counts"], "stopped": summary["stopped"]})
    return summary
