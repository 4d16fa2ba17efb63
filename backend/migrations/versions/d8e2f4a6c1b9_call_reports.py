"""call reports on call records

Revision ID: d8e2f4a6c1b9
Revises: c5d7e9a1b2f3
Create Date: 2026-11-27 15:00:00.000000

Each side of an answered call sends a report once the call has ended (path, transport, RTT, loss,
reconnects, duration: protocol.CallReportSend); the call record keeps the caller's and the
callee's as JSON. Existing records have none.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd8e2f4a6c1b9'
down_revision = 'c5d7e9a1b2f3'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('calls') as batch:
        batch.add_column(sa.Column('caller_report', sa.JSON(none_as_null=True), nullable=True))
        batch.add_column(sa.Column('callee_report', sa.JSON(none_as_null=True), nullable=True))


def downgrade():
    with op.batch_alter_table('calls') as batch:
        batch.drop_column('callee_report')
        batch.drop_column('caller_report')
