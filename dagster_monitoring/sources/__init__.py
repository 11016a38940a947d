"""External job systems as alert sources: Fivetran connections and dbt Cloud job runs.

Plain Python, like the alert core (no Dagster import; a test proves it): each source has a
client and a poll (``fivetran.py``, ``dbt_cloud.py``), a webhook normaliser, and shares the
signature checks (``webhooks.py``) and the settle delay (``settle.py``). The Dagster sensors that
poll live in :mod:`dagster_monitoring.sensors.sources`; the webhook receiver is
:mod:`dagster_monitoring.serve`.
"""

from .config import DbtCloudSourceConfig, FivetranSourceConfig, SourcesConfig
from .ingest import SourceIngest
from .settle import SettleBuffer
from .webhooks import WebhookRejected, sign, verify_signature

__all__ = [
    "DbtCloudSourceConfig",
    "FivetranSourceConfig",
    "SettleBuffer",
    "SourceIngest",
    "SourcesConfig",
    "WebhookRejected",
    "sign",
    "verify_signature",
]
