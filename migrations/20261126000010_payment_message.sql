-- The message whose on_order_created moved the order to Processing. A retry or a redelivery of
-- that same message (after a crash, a transient failure, or a dead-letter replay) resumes the
-- payment; a different message for the same order (a duplicate publish) does nothing.
alter table orders add column payment_message_id text;
