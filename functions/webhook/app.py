"""WebhookFunction: Twilio Conversations post-event webhook → Memory observations.

Thin on purpose: Powertools wiring, one call into the core, and the answer for a bad configuration.
"""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from memory_bridge.config import ConfigError
from memory_bridge.runtime import logger, metrics, register_snapstart_hooks, warm_up, webhook_service
from memory_bridge.webhook import response

# Init runs at a full vCPU: build the clients and the pool and read the secret here, time-boxed.
warm_up()
# With SnapStart (template parameter WebhookSnapStart), init runs once per version, before the snapshot.
register_snapstart_hooks()


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        service = webhook_service()
    except ConfigError as error:
        logger.error("configuration error; fix the function's environment", extra={"reason": str(error)})
        return response(500, "misconfigured")
    return service.handle(event, context)
