"""The embedded default cache: Django's database cache (one table that every web process shares, kept across
restarts) with an atomic incr.

Django's DatabaseCache.incr is get() then set(): two processes adding to the same counter at once can lose one, and
set() moves the key's expiry to the default timeout. Here incr reads the row locked (``SELECT ... FOR UPDATE`` on
PostgreSQL; on SQLite the transaction's BEGIN IMMEDIATE takes the write lock, settings' ``transaction_mode``) and
updates its value only, so the sign-in counters (annotation.signin) count every failure and keep their window.
"""

from __future__ import annotations

import base64
import pickle

from django.core.cache.backends.db import DatabaseCache as DjangoDatabaseCache
from django.db import connections, router, transaction
from django.utils.timezone import now as tz_now


class DatabaseCache(DjangoDatabaseCache):
    def incr(self, key, delta=1, version=None):
        """Add delta to the live value of key and return it, in one locked transaction; ValueError if key is missing
        or expired. The key's expiry stays as it was."""
        key = self.make_and_validate_key(key, version=version)
        db = router.db_for_write(self.cache_model_class)
        connection = connections[db]
        quote = connection.ops.quote_name
        table, cache_key, value_column = quote(self._table), quote("cache_key"), quote("value")
        lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
        now = connection.ops.adapt_datetimefield_value(tz_now().replace(microsecond=0, tzinfo=None))  # as has_key
        with transaction.atomic(using=db), connection.cursor() as cursor:
            cursor.execute(f"SELECT {value_column} FROM {table} WHERE {cache_key} = %s AND {quote('expires')} > %s"
                           f"{lock}", [key, now])
            row = cursor.fetchone()
            if row is None:
                raise ValueError(f"Key '{key}' not found")
            value = pickle.loads(base64.b64decode(connection.ops.process_clob(row[0]).encode())) + delta
            encoded = base64.b64encode(pickle.dumps(value, self.pickle_protocol)).decode("latin1")
            cursor.execute(f"UPDATE {table} SET {value_column} = %s WHERE {cache_key} = %s", [encoded, key])
        return value
