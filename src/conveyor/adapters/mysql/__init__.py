"""MySQL and MariaDB adapters (``pip install 'conveyor[mysql]'``, the asyncmy driver)."""

from ._database import Database as MySQLDatabase
from ._options import MySQLOptions as MySQLOptions
from ._schema import migrate as migrate
from ._schema import migrate_report as migrate_report

__all__ = ("MySQLDatabase", "MySQLOptions", "migrate", "migrate_report")
