-- Payment repair (issue 7): every unsettled payment gets its own next-attempt time with back-off,
-- so a few payments the provider keeps failing on can never starve the rest; payments are found
-- by the provider's reference (webhooks name it); a booking says why it ended when that was not
-- its owner's doing (capture refused, refunded or disputed at the provider).
ALTER TABLE payments ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE payments ADD COLUMN next_attempt_at INTEGER;
ALTER TABLE payments ADD COLUMN last_error TEXT;
ALTER TABLE payments ADD COLUMN reason TEXT;
CREATE INDEX payments_by_provider_ref ON payments (provider_ref) WHERE provider_ref IS NOT NULL;
ALTER TABLE bookings ADD COLUMN status_reason TEXT;
