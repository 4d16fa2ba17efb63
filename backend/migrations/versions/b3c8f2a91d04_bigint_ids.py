"""64-bit ids and read markers on server databases

Revision ID: b3c8f2a91d04
Revises: 7d6517490173
Create Date: 2026-11-28 10:00:00.000000

SQLite's INTEGER is already 64-bit, so this only changes PostgreSQL (and the like): the id
columns, the columns that point at them, and the sequences that number new rows.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b3c8f2a91d04'
down_revision = '7d6517490173'
branch_labels = None
depends_on = None

COLUMNS = {
    'users': ['id'],
    'rooms': ['id', 'user_a_id', 'user_b_id', 'read_a_id', 'read_b_id'],
    'calls': ['room_id', 'caller_id', 'callee_id'],
    'messages': ['id', 'room_id', 'sender_id'],
    'push_subscriptions': ['id', 'user_id'],
}
SEQUENCES = ['users_id_seq', 'rooms_id_seq', 'messages_id_seq', 'push_subscriptions_id_seq']


def _retype(column_type, sequence_type):
    if op.get_bind().dialect.name == 'sqlite':
        return
    for table, columns in COLUMNS.items():
        for column in columns:
            op.alter_column(table, column, type_=column_type)
    if op.get_bind().dialect.name == 'postgresql':
        for sequence in SEQUENCES:
            op.execute(f'ALTER SEQUENCE {sequence} AS {sequence_type}')


def upgrade():
    _retype(sa.BigInteger(), 'bigint')


def downgrade():
    _retype(sa.Integer(), 'integer')
