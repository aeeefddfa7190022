"""Initial schema: studies, archs, trials, epoch_metrics, results.

Written out by hand (not from the live ORM) so that later changes to ``search.results.schema`` arrive
as new revisions and this one keeps describing version 1.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_STATE = sa.Enum("RUNNING", "COMPLETE", "PRUNED", "FAILED", name="trialstate",
                 native_enum=False, length=16)
_VALUE_TYPE = sa.Enum("FINITE", "INF_POS", "INF_NEG", "NAN", name="valuetype",
                      native_enum=False, length=8)


def upgrade() -> None:
    op.create_table(
        "studies",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("config_json", sa.Text(), nullable=False),
        sa.Column("package_version", sa.String(64), nullable=False),
        sa.Column("git_sha", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "archs",
        sa.Column("arch_id", sa.String(32), primary_key=True),
        sa.Column("spec_json", sa.Text(), nullable=False),
        sa.Column("macs", sa.BigInteger(), nullable=False),
        sa.Column("params", sa.BigInteger(), nullable=False),
        sa.Column("activations", sa.BigInteger(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("per_layer_json", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "trials",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("study_id", sa.Integer(), sa.ForeignKey("studies.id"), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("arch_id", sa.String(32), sa.ForeignKey("archs.arch_id"), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(255), nullable=True),
        sa.Column("family", sa.String(64), nullable=True),
        sa.Column("params_json", sa.Text(), nullable=False),
        sa.Column("state", _STATE, nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("resources_json", sa.Text(), nullable=False),
        sa.Column("ray_trial_id", sa.String(64), nullable=True),
        sa.UniqueConstraint("study_id", "number"),
        sa.UniqueConstraint("study_id", "arch_id", "seed"),
    )
    op.create_index("ix_trials_study_state", "trials", ["study_id", "state"])
    op.create_table(
        "epoch_metrics",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("trial_id", sa.Integer(), sa.ForeignKey("trials.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("value_type", _VALUE_TYPE, nullable=False),
        sa.UniqueConstraint("trial_id", "epoch", "name"),
    )
    op.create_index("ix_epoch_metrics_trial_id", "epoch_metrics", ["trial_id"])
    op.create_table(
        "results",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("trial_id", sa.Integer(), sa.ForeignKey("trials.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("value_type", _VALUE_TYPE, nullable=False),
        sa.UniqueConstraint("trial_id", "name"),
    )
    op.create_index("ix_results_trial_id", "results", ["trial_id"])


def downgrade() -> None:
    op.drop_index("ix_results_trial_id", table_name="results")
    op.drop_table("results")
    op.drop_index("ix_epoch_metrics_trial_id", table_name="epoch_metrics")
    op.drop_table("epoch_metrics")
    op.drop_index("ix_trials_study_state", table_name="trials")
    op.drop_table("trials")
    op.drop_table("archs")
    op.drop_table("studies")
