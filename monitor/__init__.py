"""noticewatch: alerting monitor for procurement notices, regulator press pages and news feeds."""

__version__ = "0.1.0"
