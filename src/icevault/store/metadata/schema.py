"""Table definitions: the schema as the code uses it.

Changing a table here needs a new revision in ``migrations/versions`` that brings existing
databases to it; a test compares the migrated schema with these definitions.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

# SQLite only auto-numbers an INTEGER PRIMARY KEY; PostgreSQL wants a 64-bit identity.
SeqType = BigInteger().with_variant(Integer(), "sqlite")


def ascii_string(length: int) -> String:
    """Text compared byte by byte (Glacier sorts vault names in ASCII order). SQLite's
    default collation already is; PostgreSQL's follows the database's locale unless told."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")

metadata = MetaData()

settings = Table(
    "settings",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", String(12), primary_key=True),
    Column("created_at", BigInteger, nullable=False),
)

vaults = Table(
    "vaults",
    metadata,
    Column("account_id", String(12), primary_key=True),
    Column("name", ascii_string(255), primary_key=True),
    Column("created_at", BigInteger, nullable=False),
    Column("archive_count", BigInteger, nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("last_inventory_at", BigInteger),
)

vault_tags = Table(
    "vault_tags",
    metadata,
    Column("account_id", String(12), primary_key=True),
    Column("vault_name", String(255), primary_key=True),
    Column("key", String(128), primary_key=True),
    Column("value", String(256), nullable=False),
)

archives = Table(
    "archives",
    metadata,
    Column("seq", SeqType, primary_key=True, autoincrement=True),
    Column("id", String(200), nullable=False),
    Column("account_id", String(12), nullable=False),
    Column("vault_name", String(255), nullable=False),
    Column("description", Text),
    Column("size", BigInteger, nullable=False),
    Column("tree_hash", String(64), nullable=False),
    Column("leaf_hashes", LargeBinary, nullable=False),
    Column("blob_key", String(64)),
    Column("created_at", BigInteger, nullable=False),
    Column("deleted_at", BigInteger),
    # Set when the stored bytes failed verification against the leaf hashes: never served.
    Column("corrupt_at", BigInteger),
    Column("corrupt_reason", Text),
    Column("verified_at", BigInteger),  # last time a scrub or a job read and checked it all
    Column("stored_at", BigInteger),  # an import's arrival (its created_at is the source's)
    Column("hot_evicted_at", BigInteger),  # its hot bytes removed, its copies kept (--hot-days)
    UniqueConstraint("id", name="archives_id_key"),
    Index("archives_by_vault", "account_id", "vault_name", "seq"),
    Index("archives_by_blob", "blob_key"),
)

uploads = Table(
    "uploads",
    metadata,
    Column("id", ascii_string(200), primary_key=True),
    Column("account_id", String(12), nullable=False),
    Column("vault_name", String(255), nullable=False),
    Column("description", Text),
    Column("part_size", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("staging_key", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("archive_id", String(200)),
    Column("declared_size", BigInteger),  # from a part's "Content-Range: bytes a-b/TOTAL"
    # An import (icevault migrate): the archive keeps this ID and creation date.
    Column("import_archive_id", String(200)),
    Column("import_created_at", BigInteger),
    Index("uploads_by_vault", "account_id", "vault_name", "state", "id"),
    Index("uploads_by_staging", "staging_key"),
)

parts = Table(
    "parts",
    metadata,
    Column("upload_id", String(200), primary_key=True),
    Column("range_start", BigInteger, primary_key=True),
    Column("range_end", BigInteger, nullable=False),
    Column("tree_hash", String(64), nullable=False),
    Column("leaf_hashes", LargeBinary, nullable=False),
    # The object holding the part's bytes, for stores that keep each part apart (S3): each
    # write of a part goes to a new object, so a completion reads exactly the recorded ones.
    Column("blob_part", String(64)),
)

jobs = Table(
    "jobs",
    metadata,
    Column("seq", SeqType, primary_key=True, autoincrement=True),
    Column("id", String(200), nullable=False),
    Column("account_id", String(12), nullable=False),
    Column("vault_name", String(255), nullable=False),
    Column("action", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("ready_at", BigInteger, nullable=False),
    Column("description", Text),
    Column("sns_topic", Text),
    Column("tier", String(16)),
    Column("archive_id", String(200)),
    Column("archive_size", BigInteger),
    Column("archive_tree_hash", String(64)),
    Column("retrieval_start", BigInteger),
    Column("retrieval_end", BigInteger),
    Column("range_tree_hash", String(64)),
    Column("inv_format", String(8)),
    Column("inv_start", BigInteger),
    Column("inv_end", BigInteger),
    Column("inv_limit", BigInteger),
    Column("inv_marker", Text),
    Column("inv_marker_out", Text),
    Column("status_message", Text),
    Column("completed_at", BigInteger),
    Column("output_blob_key", String(64)),
    Column("output_size", BigInteger),
    # Coordination between servers on one database: a server working on a due job holds it
    # until lease_until; a finished job's notification is due at notify_at (a claim moves
    # notify_at past the sender's lease, a failure to the next retry; NULL: nothing to send).
    Column("lease_until", BigInteger),
    Column("notify_at", BigInteger),
    Column("notify_attempts", Integer, nullable=False, server_default="0"),
    Column("source_store", String(255)),  # a restored cold copy serves it (--hot-days)
    Column("source_key", String(64)),
    UniqueConstraint("id", name="jobs_id_key"),
    Index("jobs_by_vault", "account_id", "vault_name", "seq"),
    Index("jobs_by_status", "status", "ready_at"),
    Index("jobs_by_archive", "archive_id"),
    Index("jobs_by_output", "output_blob_key"),
    Index("jobs_by_notify", "notify_at"),
)

# One row per archive and copy store (--copy-url): an archive with no row for a store owes
# it a copy. States: "copying" (claimed by a server until claimed_until), "verified" (the
# copy's bytes were read back and matched the tree hash), "failed" (retried from retry_at),
# "dropping" (the archive is gone; the copy's object is deleted by garbage collection).
archive_copies = Table(
    "archive_copies",
    metadata,
    Column("archive_id", String(200), primary_key=True),
    Column("store", String(255), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("blob_key", String(64)),
    Column("claimed_until", BigInteger),
    Column("retry_at", BigInteger),
    Column("attempts", Integer, nullable=False, default=0),
    Column("error", Text),
    Column("updated_at", BigInteger, nullable=False),
    Column("restore_requested_at", BigInteger),  # a cold copy's RestoreObject, when asked
    Column("restored_until", BigInteger),  # and when the restored copy expires, once done
    Index("archive_copies_by_state", "store", "state"),
)

garbage = Table(
    "garbage",
    metadata,
    Column("seq", SeqType, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("key", String(64), nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("account_id", String(12), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("created_at", BigInteger, nullable=False),
)

access_keys = Table(
    "access_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    # SigV4 needs the secret itself to recompute signatures; the database file is 0600.
    Column("secret", String(64), nullable=False),
    Column("account_id", String(12), nullable=False),
    Column("user_name", String(64)),  # NULL: the account's root
    Column("status", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

identity_policies = Table(
    "identity_policies",
    metadata,
    Column("account_id", String(12), primary_key=True),
    Column("user_name", String(64), primary_key=True),
    Column("policy_name", String(128), primary_key=True),
    Column("document", Text, nullable=False),
)

vault_policies = Table(
    "vault_policies",
    metadata,
    Column("account_id", String(12), primary_key=True),
    Column("vault_name", String(255), primary_key=True),
    Column("kind", String(16), primary_key=True),  # "access" or "lock"
    Column("document", Text, nullable=False),
    # For "lock": its id, state (InProgress | Locked), and times.
    Column("lock_id", String(64)),
    Column("state", String(16)),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger),
)

vault_notifications = Table(
    "vault_notifications",
    metadata,
    Column("account_id", String(12), primary_key=True),
    Column("vault_name", String(255), primary_key=True),
    Column("sns_topic", Text, nullable=False),
    Column("events", Text, nullable=False),  # JSON list
)

account_settings = Table(
    "account_settings",
    metadata,
    Column("account_id", String(12), primary_key=True),
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

provisioned_capacity = Table(
    "provisioned_capacity",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("account_id", String(12), nullable=False),
    Column("start_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
)

notification_log = Table(
    "notification_log",
    metadata,
    Column("seq", SeqType, primary_key=True, autoincrement=True),
    Column("account_id", String(12), nullable=False),
    Column("vault_name", String(255), nullable=False),
    Column("job_id", String(200), nullable=False),
    Column("topic", Text, nullable=False),
    Column("target", Text),
    Column("body", Text, nullable=False),
    Column("status", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index("notification_log_by_job", "job_id"),
)


# SNS topics of an account, as webhooks an administrator registered (icevault has no SNS).
topics = Table(
    "topics",
    metadata,
    Column("account_id", String(12), primary_key=True),
    Column("name", String(256), primary_key=True),
    Column("url", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)


# Console sessions ended before they expire: one signed out ("session:<digest>"), or every
# session of an access key made before it was disabled or deleted ("key:<id>"). Rows are
# kept until no session they end could still be valid.
console_session_ends = Table(
    "console_session_ends",
    metadata,
    Column("subject", String(160), primary_key=True),
    Column("ended_at", BigInteger, nullable=False),
    Column("keep_until", BigInteger, nullable=False),
)

# Failed console sign-ins in the current window, per client address and per access key,
# shared by every server on the database.
sign_in_failures = Table(
    "sign_in_failures",
    metadata,
    Column("subject", String(160), primary_key=True),
    Column("window_start", BigInteger, nullable=False),
    Column("failures", Integer, nullable=False),
)
