"""room members: group rooms, and calls of many people

Revision ID: a1c3e5f7b9d2
Revises: d8e2f4a6c1b9
Create Date: 2026-11-27 17:30:00.000000

Who is in a room moves to its own table, room_members, with each member's read and delivered
markers (they were rooms.read_a_id ... delivered_b_id). Every direct room gets its two members,
their markers carried over. Rooms gain a kind ('direct' | 'group'), a name and who created it;
a group's user_a_id/user_b_id are NULL. A group call's record has no callee and lists its
participants. The downgrade drops the groups (the old schema cannot hold them) with their
messages and calls.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a1c3e5f7b9d2'
down_revision = 'd8e2f4a6c1b9'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')

KIND_PAIR = (
    "(kind = 'direct' AND user_a_id < user_b_id)"
    " OR (kind = 'group' AND user_a_id IS NULL AND user_b_id IS NULL)"
)


def upgrade():
    op.create_table(
        'room_members',
        sa.Column('room_id', BigId, sa.ForeignKey('rooms.id'), nullable=False),
        sa.Column('user_id', BigId, sa.ForeignKey('users.id'), nullable=False),
        sa.Column('read_id', BigId, nullable=False, server_default='0'),
        sa.Column('delivered_id', BigId, nullable=False, server_default='0'),
        sa.Column('joined_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('room_id', 'user_id'),
    )
    op.create_index('ix_room_members_user_id', 'room_members', ['user_id'])
    for side in ('a', 'b'):
        op.execute(
            'INSERT INTO room_members (room_id, user_id, read_id, delivered_id, joined_at)'
            f' SELECT id, user_{side}_id, read_{side}_id, delivered_{side}_id, created_at'
            ' FROM rooms'
        )
    with op.batch_alter_table('rooms') as batch:
        batch.add_column(
            sa.Column('kind', sa.String(8), nullable=False, server_default='direct')
        )
        batch.add_column(sa.Column('name', sa.String(64), nullable=True))
        batch.add_column(sa.Column('created_by_id', BigId, nullable=True))
        batch.create_foreign_key(
            'fk_rooms_created_by_id_users', 'users', ['created_by_id'], ['id']
        )
        batch.alter_column('user_a_id', existing_type=BigId, nullable=True)
        batch.alter_column('user_b_id', existing_type=BigId, nullable=True)
        batch.drop_constraint('ck_rooms_ordered_pair', type_='check')
        batch.create_check_constraint('ck_rooms_kind_pair', KIND_PAIR)
        for column in ('read_a_id', 'read_b_id', 'delivered_a_id', 'delivered_b_id'):
            batch.drop_column(column)
    with op.batch_alter_table('calls') as batch:
        batch.alter_column('callee_id', existing_type=BigId, nullable=True)
        batch.add_column(sa.Column('participants', sa.JSON(none_as_null=True), nullable=True))


def downgrade():
    groups = "SELECT id FROM rooms WHERE kind = 'group'"
    op.execute(f'DELETE FROM messages WHERE room_id IN ({groups})')
    op.execute(f'DELETE FROM calls WHERE room_id IN ({groups})')
    op.execute(f'DELETE FROM room_members WHERE room_id IN ({groups})')
    op.execute("DELETE FROM rooms WHERE kind = 'group'")
    with op.batch_alter_table('calls') as batch:
        batch.drop_column('participants')
        batch.alter_column('callee_id', existing_type=BigId, nullable=False)
    with op.batch_alter_table('rooms') as batch:
        for column in ('read_a_id', 'read_b_id', 'delivered_a_id', 'delivered_b_id'):
            batch.add_column(sa.Column(column, BigId, nullable=False, server_default='0'))
    for side in ('a', 'b'):
        for marker in ('read', 'delivered'):
            op.execute(
                f'UPDATE rooms SET {marker}_{side}_id = (SELECT m.{marker}_id FROM room_members m'
                f' WHERE m.room_id = rooms.id AND m.user_id = rooms.user_{side}_id)'
            )
    with op.batch_alter_table('rooms') as batch:
        batch.drop_constraint('ck_rooms_kind_pair', type_='check')
        batch.create_check_constraint('ck_rooms_ordered_pair', 'user_a_id < user_b_id')
        batch.alter_column('user_a_id', existing_type=BigId, nullable=False)
        batch.alter_column('user_b_id', existing_type=BigId, nullable=False)
        batch.drop_constraint('fk_rooms_created_by_id_users', type_='foreignkey')
        batch.drop_column('created_by_id')
        batch.drop_column('name')
        batch.drop_column('kind')
    op.drop_index('ix_room_members_user_id', table_name='room_members')
    op.drop_table('room_members')
