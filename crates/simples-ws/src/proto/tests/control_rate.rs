//! `Config::max_control_frames_per_second`: a ping flood fails the
//! connection with 1008; a peer under the limit is never failed, however
//! long it keeps pinging.

use super::*;

fn limited(max: u32) -> Protocol {
    Protocol::new(Role::Server, Config { max_control_frames_per_second: Some(max), ..Config::default() })
}

fn pings(n: usize) -> Vec<u8> {
    (0..n).flat_map(|i| cf(PING, format!("{i}").as_bytes())).collect()
}

#[test]
fn ping_flood_over_the_limit_fails_with_1008() {
    let mut input = pings(11);
    input.extend_from_slice(&cf(TEXT, b"after"));
    let err = expect_failure(Role::Server, Config { max_control_frames_per_second: Some(10), ..Config::default() }, &input, 1008);
    assert_eq!(err, ProtocolError::ControlFrameFlood { max: 10 });
}

#[test]
fn the_default_limit_is_1000_per_second() {
    assert_eq!(Config::default().max_control_frames_per_second, Some(1000));
    let mut p = server();
    p.receive(&pings(1001));
    let (msgs, err) = poll_all(&mut p);
    assert_eq!(msgs.len(), 1000, "every ping under the limit is delivered");
    assert_eq!(err, Some(ProtocolError::ControlFrameFlood { max: 1000 }));
}

#[test]
fn zero_refuses_the_first_control_frame() {
    let err = expect_failure(Role::Server, Config { max_control_frames_per_second: Some(0), ..Config::default() }, &cf(PING, b"x"), 1008);
    assert_eq!(err, ProtocolError::ControlFrameFlood { max: 0 });
}

#[test]
fn pongs_count_too() {
    let input: Vec<u8> = (0..4).flat_map(|_| cf(PONG, b"")).collect();
    expect_failure(Role::Server, Config { max_control_frames_per_second: Some(3), ..Config::default() }, &input, 1008);
}

#[test]
fn the_window_ends_a_second_after_it_starts() {
    let t0 = Instant::now();
    let mut p = limited(10);
    assert!(!p.needs_clock(), "no control frame yet: no clock needed");
    p.receive(&pings(10));
    assert_eq!(poll_all(&mut p).0.len(), 10);
    assert!(p.needs_clock(), "the window needs the time to end");
    assert_eq!(p.poll_timeout(t0), Some(t0 + Duration::from_secs(1)), "a wake-up at the window's end");
    // Before the end: one more fails.
    let mut early = limited(10);
    early.receive(&pings(10));
    poll_all(&mut early);
    early.poll_timeout(t0);
    early.handle_timeout(t0 + Duration::from_millis(999));
    early.receive(&pings(1));
    assert_eq!(poll_all(&mut early).1, Some(ProtocolError::ControlFrameFlood { max: 10 }));
    // At the end the count starts over; nothing is due until the next frame.
    p.handle_timeout(t0 + Duration::from_secs(1));
    assert!(!p.needs_clock());
    assert_eq!(p.poll_timeout(t0 + Duration::from_secs(1)), None);
    p.receive(&pings(10));
    let (msgs, err) = poll_all(&mut p);
    assert_eq!((msgs.len(), err), (10, None));
}

#[test]
fn a_peer_under_the_limit_is_never_failed() {
    // 10 pings per 100 ms (100 per second) against a limit of 150, for a
    // minute of the driver's clock, with the wake-ups the driver is asked
    // for honoured: the count never reaches the limit.
    let mut now = Instant::now();
    let mut p = limited(150);
    let mut due = None;
    for _ in 0..600 {
        now += Duration::from_millis(100);
        if due.is_some_and(|d| d <= now) {
            p.handle_timeout(now);
        }
        p.receive(&pings(10));
        let (msgs, err) = poll_all(&mut p);
        assert_eq!((msgs.len(), err), (10, None));
        drain(&mut p);
        due = p.poll_timeout(now);
    }
}

#[test]
fn no_limit_with_none() {
    let mut p = Protocol::new(Role::Server, Config { max_control_frames_per_second: None, ..Config::default() });
    p.receive(&pings(5000));
    let (msgs, err) = poll_all(&mut p);
    assert_eq!((msgs.len(), err), (5000, None));
}
