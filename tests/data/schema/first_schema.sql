CREATE TABLE meta (
	"key" VARCHAR NOT NULL, 
	value VARCHAR NOT NULL, 
	PRIMARY KEY ("key")
);

CREATE TABLE source_state (
	name VARCHAR NOT NULL, 
	type VARCHAR NOT NULL, 
	identity VARCHAR NOT NULL, 
	etag VARCHAR, 
	last_modified VARCHAR, 
	body_hash VARCHAR, 
	baselined BOOLEAN NOT NULL, 
	last_fetch_at DATETIME, 
	last_success_at DATETIME, 
	last_outcome VARCHAR, 
	last_error TEXT, 
	paused_until DATETIME, 
	consecutive_failures INTEGER NOT NULL, 
	fetches INTEGER NOT NULL, 
	failures INTEGER NOT NULL, 
	PRIMARY KEY (name)
);

CREATE TABLE items (
	id INTEGER NOT NULL, 
	source VARCHAR NOT NULL, 
	source_type VARCHAR NOT NULL, 
	item_key VARCHAR NOT NULL, 
	content_hash VARCHAR NOT NULL, 
	version INTEGER NOT NULL, 
	title TEXT NOT NULL, 
	url TEXT, 
	published DATETIME, 
	summary TEXT NOT NULL, 
	summary_html TEXT NOT NULL, 
	content TEXT NOT NULL, 
	language VARCHAR, 
	fields JSON NOT NULL, 
	first_seen DATETIME NOT NULL, 
	last_seen DATETIME NOT NULL, 
	updated_at DATETIME, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_items_source_key UNIQUE (source, item_key)
);

CREATE INDEX ix_items_first_seen ON items (first_seen);

CREATE INDEX ix_items_published ON items (published);

CREATE INDEX ix_items_source ON items (source);

CREATE TABLE notifier_state (
	name VARCHAR NOT NULL, 
	fingerprint VARCHAR NOT NULL, 
	disabled_at DATETIME, 
	disabled_reason VARCHAR, 
	PRIMARY KEY (name)
);

CREATE TABLE alerts (
	id VARCHAR NOT NULL, 
	item_id INTEGER NOT NULL, 
	notifier VARCHAR NOT NULL, 
	event_type VARCHAR NOT NULL, 
	rules JSON NOT NULL, 
	data JSON NOT NULL, 
	status VARCHAR NOT NULL, 
	attempts INTEGER NOT NULL, 
	created_at DATETIME NOT NULL, 
	next_attempt_at DATETIME NOT NULL, 
	delivered_at DATETIME, 
	last_status INTEGER, 
	last_error TEXT, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_alerts_item_notifier UNIQUE (item_id, notifier), 
	FOREIGN KEY(item_id) REFERENCES items (id)
);

CREATE INDEX ix_alerts_item_id ON alerts (item_id);

CREATE INDEX ix_alerts_due ON alerts (status, notifier, next_attempt_at);

CREATE TABLE delivery_attempts (
	id INTEGER NOT NULL, 
	alert_id VARCHAR NOT NULL, 
	notifier VARCHAR NOT NULL, 
	attempt INTEGER NOT NULL, 
	at DATETIME NOT NULL, 
	outcome VARCHAR NOT NULL, 
	status_code INTEGER, 
	error TEXT, 
	duration_ms INTEGER NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(alert_id) REFERENCES alerts (id)
);

CREATE INDEX ix_delivery_attempts_alert_id ON delivery_attempts (alert_id);

