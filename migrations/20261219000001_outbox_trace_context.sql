-- The W3C trace context of the request or job that wrote an event, published with it as the
-- message's `traceparent` / `tracestate` headers (issue 13). Null for rows written before.
alter table outbox add column traceparent text, add column tracestate text;
