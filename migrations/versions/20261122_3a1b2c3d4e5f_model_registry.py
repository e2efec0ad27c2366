"""model registry: registered models, versions, release channels, channel events

Revision ID: 3a1b2c3d4e5f
Revises: ff9b0b0046bd
Create Date: 2026-11-22 07:41:42.940226
"""
from alembic import op
import sqlalchemy as sa
import edgefarm_gateway.orm


revision = '3a1b2c3d4e5f'
down_revision = 'ff9b0b0046bd'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('registered_models',
    sa.Column('id', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('owner_id', sa.String(length=16), nullable=True),
    sa.Column('created_at', edgefarm_gateway.orm.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    with op.batch_alter_table('registered_models', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_registered_models_created_at'), ['created_at'], unique=False)

    op.create_table('channel_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('registered_model_id', sa.String(length=16), nullable=False),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('from_version', sa.Integer(), nullable=True),
    sa.Column('to_version', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('by', sa.String(length=200), nullable=False),
    sa.Column('by_id', sa.String(length=16), nullable=True),
    sa.Column('at', edgefarm_gateway.orm.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['registered_model_id'], ['registered_models.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('channel_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_channel_events_registered_model_id'), ['registered_model_id'],
                              unique=False)

    op.create_table('model_versions',
    sa.Column('id', sa.String(length=16), nullable=False),
    sa.Column('registered_model_id', sa.String(length=16), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('source_model_id', sa.String(length=16), nullable=False),
    sa.Column('targets', sa.JSON(), nullable=False),
    sa.Column('evidence', sa.JSON(), nullable=False),
    sa.Column('pipeline_id', sa.String(length=16), nullable=True),
    sa.Column('submitted_by', sa.String(length=200), nullable=False),
    sa.Column('submitted_by_id', sa.String(length=16), nullable=True),
    sa.Column('created_at', edgefarm_gateway.orm.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['registered_model_id'], ['registered_models.id'], ),
    sa.ForeignKeyConstraint(['source_model_id'], ['models.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('registered_model_id', 'number')
    )
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_model_versions_registered_model_id'), ['registered_model_id'],
                              unique=False)

    op.create_table('registry_channels',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('registered_model_id', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('version_id', sa.String(length=16), nullable=True),
    sa.Column('updated_at', edgefarm_gateway.orm.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['registered_model_id'], ['registered_models.id'], ),
    sa.ForeignKeyConstraint(['version_id'], ['model_versions.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('registered_model_id', 'name')
    )


def downgrade() -> None:
    op.drop_table('registry_channels')
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_model_versions_registered_model_id'))

    op.drop_table('model_versions')
    with op.batch_alter_table('channel_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_channel_events_registered_model_id'))

    op.drop_table('channel_events')
    with op.batch_alter_table('registered_models', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_registered_models_created_at'))

    op.drop_table('registered_models')
