"""Aggregates in SQL: covering indexes for per-network summaries, and stored placement facts.

``arch_placements`` holds what ``analysis.placement.arch_features`` derives from an arch's spec
(its placement family, descriptors, display name and flattened spec fields), so a million-trial
study groups by family in SQL instead of parsing every spec on each load. It is derived data:
any row may be missing (analysis computes it then) and ``version`` says which rules wrote it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

FACTS = ("arch_id", "version", "family", "name", "n_temporal", "t_com", "t_share_bottom",
         "t_share_top", "temporal_mac_frac", "num_classes")


def upgrade() -> None:
    op.create_table(
        "arch_placements",
        sa.Column("arch_id", sa.String(32), sa.ForeignKey("archs.arch_id"), primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("family", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("n_temporal", sa.Integer(), nullable=True),
        sa.Column("t_com", sa.Float(), nullable=True),
        sa.Column("t_share_bottom", sa.Float(), nullable=True),
        sa.Column("t_share_top", sa.Float(), nullable=True),
        sa.Column("temporal_mac_frac", sa.Float(), nullable=True),
        sa.Column("num_classes", sa.Integer(), nullable=True),
        sa.Column("fields_json", sa.Text(), nullable=False),
    )
    op.create_index("ix_arch_placements_family", "arch_placements", ["family"])
    # what a per-network summary joins, without reading the spec fields
    op.create_index("ix_arch_placements_facts", "arch_placements", list(FACTS))
    # per-network GROUP BY: a study's trials in arch order, with what the summaries read
    op.create_index("ix_trials_study_state_arch", "trials", ["study_id", "state", "arch_id", "seed"])
    # one final metric of every trial, in trial order, without touching the results table
    op.create_index("ix_results_name_trial_value", "results",
                    ["name", "trial_id", "value", "value_type"])


def downgrade() -> None:
    op.drop_index("ix_results_name_trial_value", table_name="results")
    op.drop_index("ix_trials_study_state_arch", table_name="trials")
    op.drop_index("ix_arch_placements_facts", table_name="arch_placements")
    op.drop_index("ix_arch_placements_family", table_name="arch_placements")
    op.drop_table("arch_placements")
