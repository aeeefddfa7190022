"""Stored per-network summaries: a study's GROUP BY kept by the writer, read while current.

``study_summaries`` holds what a study's finished trials spent; ``arch_summaries``, per study,
metric and network, what ``search.results.summaries`` groups from the COMPLETE trials;
``summary_stamps`` the study's stamp when they were stored.
Derived data: a reader uses them only while the stamp matches, else groups live. The index on
(study_id, finished_at) makes the stamp's latest finish time a seek; the one on archs' costs
lets the summaries' join skip the specs.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "study_summaries",
        sa.Column("study_id", sa.Integer(), sa.ForeignKey("studies.id"), primary_key=True),
        sa.Column("stamp", sa.Text(), nullable=False),
        sa.Column("spent_s", sa.Float(), nullable=False),
        sa.Column("spent_gmacs", sa.Float(), nullable=False),
        sa.Column("computed_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "summary_stamps",
        sa.Column("study_id", sa.Integer(), sa.ForeignKey("studies.id"), primary_key=True),
        sa.Column("metric", sa.String(64), primary_key=True),
        sa.Column("stamp", sa.Text(), nullable=False),
        sa.Column("seeds_json", sa.Text(), nullable=False),
        sa.Column("computed_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "arch_summaries",
        sa.Column("study_id", sa.Integer(), sa.ForeignKey("studies.id"), primary_key=True),
        sa.Column("metric", sa.String(64), primary_key=True),
        sa.Column("arch_id", sa.String(32), sa.ForeignKey("archs.arch_id"), primary_key=True),
        sa.Column("label", sa.String(255), nullable=True),
        sa.Column("design_family", sa.String(64), nullable=True),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("chance_sum", sa.Float(), nullable=True),
        sa.Column("chance_n", sa.Integer(), nullable=False),
        sa.Column("majority_sum", sa.Float(), nullable=True),
        sa.Column("majority_n", sa.Integer(), nullable=False),
        sa.Column("gap_sum", sa.Float(), nullable=True),
        sa.Column("gap_n", sa.Integer(), nullable=False),
        sa.Column("n_undertrained", sa.Integer(), nullable=False),
        sa.Column("values_json", sa.Text(), nullable=False),
    )
    op.create_index("ix_trials_study_finished", "trials", ["study_id", "finished_at"])
    # a network's costs without reading its spec (a page of 10 kB): the summaries' join
    op.create_index("ix_archs_costs", "archs", ["arch_id", "macs", "params", "latency_ms"])


def downgrade() -> None:
    op.drop_index("ix_archs_costs", table_name="archs")
    op.drop_index("ix_trials_study_finished", table_name="trials")
    op.drop_table("arch_summaries")
    op.drop_table("summary_stamps")
    op.drop_table("study_summaries")
