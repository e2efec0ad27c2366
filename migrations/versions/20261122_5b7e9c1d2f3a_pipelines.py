"""pipelines

Revision ID: 5b7e9c1d2f3a
Revises: 3a1b2c3d4e5f
Create Date: 2026-11-22 08:40:00
"""
from alembic import op
import sqlalchemy as sa
import edgefarm_gateway.orm


revision = '5b7e9c1d2f3a'
down_revision = '3a1b2c3d4e5f'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('pipelines',
    sa.Column('id', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('stage', sa.String(length=32), nullable=False),
    sa.Column('failure_reason', sa.Text(), nullable=True),
    sa.Column('spec', sa.JSON(), nullable=False),
    sa.Column('jobs', sa.JSON(), nullable=False),
    sa.Column('report', sa.JSON(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=True),
    sa.Column('events', sa.JSON(), nullable=False),
    sa.Column('owner_id', sa.String(length=16), nullable=False),
    sa.Column('owner_name', sa.String(length=200), nullable=False),
    sa.Column('created_at', edgefarm_gateway.orm.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', edgefarm_gateway.orm.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', edgefarm_gateway.orm.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('pipelines', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pipelines_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_pipelines_name'), ['name'], unique=False)
        batch_op.create_index(batch_op.f('ix_pipelines_state'), ['state'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('pipelines', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pipelines_state'))
        batch_op.drop_index(batch_op.f('ix_pipelines_name'))
        batch_op.drop_index(batch_op.f('ix_pipelines_created_at'))
    op.drop_table('pipelines')
