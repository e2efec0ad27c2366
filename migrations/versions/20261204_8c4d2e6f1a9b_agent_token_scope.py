"""agent tokens: bound to one agent, optionally to named device pools

Revision ID: 8c4d2e6f1a9b
Revises: 5b7e9c1d2f3a
Create Date: 2026-12-04 19:10:00
"""
from alembic import op
import sqlalchemy as sa


revision = '8c4d2e6f1a9b'
down_revision = '5b7e9c1d2f3a'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('agent_name', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('pools', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_column('pools')
        batch_op.drop_column('agent_name')
