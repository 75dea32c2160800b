"""Layer: support. Configuration from the environment (documented in README: Configuration)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.cache.connection import is_cluster_url
from models.secret_box import SecretBox

DATABASE_SCHEMES = frozenset({"postgresql", "postgres", "postgresql+psycopg", "sqlite"})
REDIS_SCHEMES = frozenset({"redis", "rediss", "unix"})


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    data_dir: Path = Field(
        default=Path(".idsync"),
        validation_alias="IDSYNC_DATA_DIR",
        description="Where the embedded defaults keep their files (SQLite, embedded Redis).",
    )
    database_url: str | None = Field(
        default=None,
        validation_alias="DATABASE_URL",
        description="postgresql://user@host:port/db or sqlite:///path; "
        "default sqlite:///<IDSYNC_DATA_DIR>/idsync.db",
    )
    redis_url: str | None = Field(
        default=None,
        validation_alias="REDIS_URL",
        description="Celery broker and default permission cache; unset: embedded redis-server",
    )
    cache_redis_url: str | None = Field(
        default=None,
        validation_alias="CACHE_REDIS_URL",
        description="Redis for the permission cache when it is not REDIS_URL",
    )
    public_base_url: str | None = Field(
        default=None,
        validation_alias="IDSYNC_PUBLIC_URL",
        description="Externally visible base URL (for meta.location); default from request",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        default="INFO", validation_alias="IDSYNC_LOG_LEVEL"
    )
    db_pool_size: int = Field(default=10, ge=1, validation_alias="IDSYNC_DB_POOL_SIZE")
    scim_max_results: int = Field(default=1000, ge=1, validation_alias="IDSYNC_SCIM_MAX_RESULTS")
    scim_default_count: int = Field(default=100, ge=1, validation_alias="IDSYNC_SCIM_DEFAULT_COUNT")
    scim_max_bulk_operations: int = Field(
        default=1000, ge=1, validation_alias="IDSYNC_SCIM_MAX_BULK_OPERATIONS"
    )
    scim_max_payload_bytes: int = Field(
        default=1_048_576, ge=1024, validation_alias="IDSYNC_SCIM_MAX_PAYLOAD_BYTES"
    )
    scim_token_cache_s: float = Field(
        default=2.0,
        ge=0,
        validation_alias="IDSYNC_SCIM_TOKEN_CACHE_S",
        description="Seconds a verified SCIM token is remembered per process, so a "
        "revocation takes up to this long to take effect; 0 verifies every request",
    )

    # --- worker / permission cache (docs/worker.md) ---
    broker_visibility_timeout_s: int = Field(
        default=30,
        validation_alias="IDSYNC_BROKER_VISIBILITY_TIMEOUT",
        description="Seconds before a killed worker's unacknowledged task is redelivered",
    )
    worker_concurrency: int = Field(default=4, ge=1, validation_alias="IDSYNC_WORKER_CONCURRENCY")
    reconcile_interval_s: float = Field(
        default=300.0, gt=0, validation_alias="IDSYNC_RECONCILE_INTERVAL_S"
    )
    tombstone_retention_s: float = Field(
        default=86_400.0,
        validation_alias="IDSYNC_TOMBSTONE_RETENTION_S",
        description="Reconcile drops cache tombstones of deleted users older than this",
    )
    sweep_interval_s: float = Field(
        default=2.0,
        gt=0,
        validation_alias="IDSYNC_SWEEP_INTERVAL_S",
        description="Outbox catch-up sweep (changes whose after-commit hook was lost)",
    )
    idp_kind: Literal["scim", "okta", "graph"] = Field(
        default="scim",
        validation_alias="IDSYNC_IDP_KIND",
        description="Upstream directory of the scheduled IdP pull: scim, okta or graph",
    )
    idp_scim_url: str | None = Field(
        default=None,
        validation_alias="IDSYNC_IDP_SCIM_URL",
        description="Upstream SCIM 2.0 base URL for the scheduled IdP pull (unset: no pull)",
    )
    idp_url: str | None = Field(
        default=None,
        validation_alias="IDSYNC_IDP_URL",
        description="Upstream base URL: SCIM base URL, Okta org URL "
        "(https://acme.okta.com) or Graph root (default https://graph.microsoft.com)",
    )
    idp_token: SecretStr | None = Field(
        default=None,
        validation_alias="IDSYNC_IDP_TOKEN",
        description="SCIM bearer token, or Okta API token (sent as SSWS)",
    )
    idp_token_url: str | None = Field(
        default=None,
        validation_alias="IDSYNC_IDP_TOKEN_URL",
        description="Graph: OAuth token URL "
        "(https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token)",
    )
    idp_client_id: str | None = Field(default=None, validation_alias="IDSYNC_IDP_CLIENT_ID")
    idp_client_secret: SecretStr | None = Field(
        default=None, validation_alias="IDSYNC_IDP_CLIENT_SECRET"
    )
    idp_scope: str = Field(
        default="https://graph.microsoft.com/.default", validation_alias="IDSYNC_IDP_SCOPE"
    )
    idp_org: str | None = Field(
        default=None, validation_alias="IDSYNC_IDP_ORG", description="Organization id to pull into"
    )
    idp_pull_interval_s: float = Field(
        default=900.0, gt=0, validation_alias="IDSYNC_IDP_PULL_INTERVAL_S"
    )
    idp_deactivate_missing: bool = Field(
        default=False,
        validation_alias="IDSYNC_IDP_DEACTIVATE_MISSING",
        description="Deactivate local users missing upstream (only after a complete read)",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        validation_alias="IDSYNC_SECRET_KEY",
        description="Fernet key that encrypts stored IdP connection credentials",
    )
    secret_keys_old: SecretStr | None = Field(
        default=None,
        validation_alias="IDSYNC_SECRET_KEYS_OLD",
        description="Previous keys (comma-separated): still decrypt until `secrets rotate`",
    )
    idp_dispatch_interval_s: float = Field(
        default=10.0,
        gt=0,
        validation_alias="IDSYNC_IDP_DISPATCH_INTERVAL_S",
        description="How often the beat looks for IdP connections whose run is due",
    )
    idp_run_retention_days: float = Field(
        default=30.0,
        gt=0,
        validation_alias="IDSYNC_IDP_RUN_RETENTION_DAYS",
        description="IdP pull runs older than this are pruned (on the request log's schedule)",
    )
    check_api_token: SecretStr | None = Field(
        default=None,
        validation_alias="IDSYNC_CHECK_API_TOKEN",
        description="Service token for /api/v1/check (any org); org admin keys work too",
    )
    check_local_answers: bool = Field(
        default=True,
        validation_alias="IDSYNC_CHECK_LOCAL_ANSWERS",
        description="Answer repeated checks from memory while Redis reports no change "
        "(CLIENT TRACKING); off: every check is a Redis round trip",
    )
    # --- observability (docs/operations.md: metrics, tracing, sync status, request log) ---
    metrics_enabled: bool = Field(
        default=True,
        validation_alias="IDSYNC_METRICS",
        description="Count HTTP requests (every SCIM request included) for /metrics",
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        validation_alias="IDSYNC_METRICS_TOKEN",
        description="When set, /metrics (API and worker) requires this bearer token",
    )
    metrics_max_orgs: int = Field(
        default=50,
        ge=0,
        validation_alias="IDSYNC_METRICS_MAX_ORGS",
        description="Organizations (furthest behind first) with their own freshness series",
    )
    worker_metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        validation_alias="IDSYNC_WORKER_METRICS_PORT",
        description="Port of the worker's /metrics (its main process; unset: not served)",
    )
    worker_metrics_host: str = Field(
        default="127.0.0.1",
        validation_alias="IDSYNC_WORKER_METRICS_HOST",
        description="Address the worker's /metrics listens on",
    )
    scim_log_enabled: bool = Field(
        default=True,
        validation_alias="IDSYNC_SCIM_LOG",
        description="Keep the SCIM request log (every SCIM request, bodies redacted)",
    )
    scim_log_retention_days: float = Field(
        default=30.0,
        gt=0,
        validation_alias="IDSYNC_SCIM_LOG_RETENTION_DAYS",
        description="SCIM request log rows older than this are pruned",
    )
    scim_log_max_rows: int = Field(
        default=1_000_000,
        ge=1000,
        validation_alias="IDSYNC_SCIM_LOG_MAX_ROWS",
        description="The SCIM request log keeps at most this many rows (oldest pruned)",
    )
    scim_log_max_body_bytes: int = Field(
        default=16_384,
        ge=256,
        validation_alias="IDSYNC_SCIM_LOG_MAX_BODY_BYTES",
        description="A logged request body is cut at this size",
    )
    scim_log_queue: int = Field(
        default=10_000,
        ge=100,
        validation_alias="IDSYNC_SCIM_LOG_QUEUE",
        description="Log rows an API process holds before it drops them (slow database)",
    )
    scim_log_prune_interval_s: float = Field(
        default=3600.0,
        gt=0,
        validation_alias="IDSYNC_SCIM_LOG_PRUNE_INTERVAL_S",
        description="How often the beat prunes the SCIM request log",
    )
    webhook_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=15,
        validation_alias="IDSYNC_WEBHOOK_TIMEOUT_S",
        description="Timeout of one webhook POST (connect at most 5 s); below the task limits",
    )
    webhook_retry_max_s: float = Field(
        default=600.0,
        ge=1,
        validation_alias="IDSYNC_WEBHOOK_RETRY_MAX_S",
        description="Longest wait between two attempts at a webhook event (backoff cap)",
    )
    outbound_allow_private: bool = Field(
        default=False,
        validation_alias="IDSYNC_OUTBOUND_ALLOW_PRIVATE",
        description="Allow webhook receivers and IdP connection URLs on loopback/private "
        "addresses (the SSRF guard off)",
    )
    webhook_failing_after_s: float = Field(
        default=86_400.0,
        gt=0,
        validation_alias="IDSYNC_WEBHOOK_FAILING_AFTER_S",
        description="A subscription failing this long without a success is marked failing",
    )
    console_idle_s: float = Field(
        default=1800.0,
        gt=0,
        validation_alias="IDSYNC_CONSOLE_IDLE_S",
        description="A console session unused this long ends (docs/console.md)",
    )
    console_max_age_s: float = Field(
        default=43_200.0,
        gt=0,
        validation_alias="IDSYNC_CONSOLE_MAX_AGE_S",
        description="A console session ends this long after sign-in, used or not",
    )
    fault_drain_pause_s: float = Field(
        default=0.0,
        validation_alias="IDSYNC_FAULT_DRAIN_PAUSE_S",
        description="Testing only: pause between compute and write in drain batches",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str | None) -> str | None:
        if value is None:
            return None
        scheme = value.partition(":")[0].lower()
        if scheme not in DATABASE_SCHEMES:
            raise ValueError(
                f"unsupported scheme {scheme!r}: use postgresql://user@host:port/db "
                "or sqlite:///path"
            )
        return value

    @field_validator("redis_url", "cache_redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value is not None and value.partition(":")[0].lower() not in REDIS_SCHEMES:
            raise ValueError("use redis://host:port/db, rediss:// or unix://")
        return value

    @field_validator("redis_url")
    @classmethod
    def _broker_is_one_server(cls, value: str | None) -> str | None:
        if value is not None and is_cluster_url(value):
            raise ValueError(
                "the Celery broker cannot be a Redis Cluster: put ?cluster=true on "
                "CACHE_REDIS_URL only"
            )
        return value

    @staticmethod
    def reveal(secret: SecretStr | None) -> str | None:
        """The plain value of a secret setting (SecretStr keeps it out of logs and reprs)."""
        return None if secret is None else secret.get_secret_value()

    def secret_box(self) -> SecretBox:
        """The credential encryption of ``IDSYNC_SECRET_KEY`` (and the old keys); raises
        ``models.secret_box.SecretKeyError`` (one operator line) when it is missing or bad."""
        return SecretBox.from_env_values(
            Settings.reveal(self.secret_key), Settings.reveal(self.secret_keys_old)
        )

    def idp_missing(self) -> list[str]:
        """Settings the configured IdP pull still needs (empty: complete)."""
        need: dict[str, object] = {"IDSYNC_IDP_ORG": self.idp_org}
        if self.idp_kind == "scim":
            need["IDSYNC_IDP_URL (or IDSYNC_IDP_SCIM_URL)"] = self.idp_url or self.idp_scim_url
        elif self.idp_kind == "okta":
            need["IDSYNC_IDP_URL"] = self.idp_url
            need["IDSYNC_IDP_TOKEN"] = self.idp_token
        else:
            need["IDSYNC_IDP_TOKEN_URL"] = self.idp_token_url
            need["IDSYNC_IDP_CLIENT_ID"] = self.idp_client_id
            need["IDSYNC_IDP_CLIENT_SECRET"] = self.idp_client_secret
        return [name for name, value in need.items() if not value]

    def idp_configured(self) -> bool:
        """Whether the beat schedules the IdP pull."""
        return not self.idp_missing()

    def resolved_cache_redis_url(self) -> str | None:
        return self.cache_redis_url or self.redis_url

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'idsync.db').resolve()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
