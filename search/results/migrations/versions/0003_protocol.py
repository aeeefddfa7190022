"""The study protocol: per-trial data seed, convergence, baselines; one driver per study (lease).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

NEW_TRIAL_COLUMNS = (("data_seed", sa.Integer), ("plateaued", sa.Boolean),
                     ("train_val_gap", sa.Float), ("chance_acc", sa.Float),
                     ("majority_acc", sa.Float))


def upgrade() -> None:
    with op.batch_alter_table("trials") as batch:
        for name, kind in NEW_TRIAL_COLUMNS:
            batch.add_column(sa.Column(name, kind(), nullable=True))
    op.create_table(
        "study_leases",
        sa.Column("study_name", sa.String(255), primary_key=True),
        sa.Column("holder", sa.String(255), nullable=False),
        sa.Column("acquired_at", sa.DateTime(), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("study_leases")
    with op.batch_alter_table("trials") as batch:
        for name, _ in reversed(NEW_TRIAL_COLUMNS):
            batch.drop_column(name)
