"""delivered markers on rooms

Revision ID: c5d7e9a1b2f3
Revises: b3c8f2a91d04
Create Date: 2026-11-29 10:00:00.000000

Each member's delivered marker sits beside their read marker: the newest message that reached a
device of theirs. Existing rooms start from the read marker, the most that is known to be true.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c5d7e9a1b2f3'
down_revision = 'b3c8f2a91d04'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade():
    with op.batch_alter_table('rooms') as batch:
        batch.add_column(sa.Column('delivered_a_id', BigId, nullable=False, server_default='0'))
        batch.add_column(sa.Column('delivered_b_id', BigId, nullable=False, server_default='0'))
    op.execute('UPDATE rooms SET delivered_a_id = read_a_id, delivered_b_id = read_b_id')


def downgrade():
    with op.batch_alter_table('rooms') as batch:
        batch.drop_column('delivered_b_id')
        batch.drop_column('delivered_a_id')
