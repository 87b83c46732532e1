/// The largest AMQP frame orderflow asks for, in bytes. lapin keeps a send and a receive buffer
/// of 32 frames per connection, fully allocated: at RabbitMQ's default 128 KiB frames that is
/// 8 MiB per connection, most of an idle process's memory. Our messages are a few hundred bytes,
/// and a larger body is simply split into several frames.
pub const FRAME_MAX: u32 = 16 * 1024;

/// `url` with `frame_max` set to [`FRAME_MAX`], unless the URL already sets it.
pub fn connection_url(url: &str) -> String {
    if url.contains("frame_max=") {
        return url.to_owned();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}frame_max={FRAME_MAX}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_max_is_added_unless_already_set() {
        assert_eq!(connection_url("amqp://h/%2f"), "amqp://h/%2f?frame_max=16384");
        assert_eq!(connection_url("amqp://h/%2f?heartbeat=10"), "amqp://h/%2f?heartbeat=10&frame_max=16384");
        assert_eq!(connection_url("amqp://h/%2f?frame_max=4096"), "amqp://h/%2f?frame_max=4096");
        let parsed: lapin::uri::AMQPUri = connection_url("amqp://guest:guest@localhost:5672/%2f").parse().unwrap();
        assert_eq!(parsed.query.frame_max, Some(FRAME_MAX));
    }
}
