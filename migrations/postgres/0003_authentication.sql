-- SPF, DKIM and DMARC results of the message, as JSON {"spf","dkim","dmarc"}.
ALTER TABLE timeline_entries ADD COLUMN authentication TEXT;
