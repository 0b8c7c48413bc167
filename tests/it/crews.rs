//! The schedule: more than one crew, and a schedule that is full and then opens up.

use crate::helpers::twilio::{sms, texts_to};
use crate::helpers::{TestApp, config};

#[tokio::test]
async fn two_crews_take_the_same_window_and_a_third_customer_gets_another() {
    let server = TestApp::spawn(config::sms()).await;
    let db = &server.db;
    // The first message seeds the settings; then the company has two crews.
    sms(&server, "SMk0", "+14045550100", "hello").await;
    sqlx::query(
        "UPDATE \"Config\" SET hours = coalesce(hours, '{}') || '{\"crews\": 2}' WHERE tenant_id = 'default'",
    )
    .execute(&mut db.conn().await)
    .await
    .expect("two crews");
    let mut first_offers = Vec::new();
    for (n, phone) in ["+14045550101", "+14045550102", "+14045550103"]
        .iter()
        .enumerate()
    {
        sms(&server, &format!("SMk{n}a"), phone, "a couch").await;
        sms(
            &server,
            &format!("SMk{n}b"),
            phone,
            "123 Main St, Canton GA 30114",
        )
        .await;
        let offer = texts_to(db, phone).await.pop().expect("windows");
        first_offers.push(
            offer
                .lines()
                .find(|l| l.starts_with("1)"))
                .expect("a first window")
                .to_owned(),
        );
        if n < 2 {
            sms(&server, &format!("SMk{n}c"), phone, "1").await;
            let booked = texts_to(db, phone).await.pop().expect("booked");
            assert!(booked.contains("You're booked"), "{booked}");
        }
    }
    assert_eq!(
        first_offers[0], first_offers[1],
        "the second crew is free then"
    );
    assert_ne!(
        first_offers[1], first_offers[2],
        "both crews are booked then"
    );
    let crews: Vec<i32> = sqlx::query_scalar("SELECT crew FROM \"Booking\" ORDER BY crew")
        .fetch_all(&mut db.conn().await)
        .await
        .expect("bookings");
    assert_eq!(crews, [1, 2]);
}

#[tokio::test]
async fn a_customer_told_the_schedule_is_full_hears_when_windows_open() {
    let server = TestApp::spawn(config::sms()).await;
    let db = &server.db;
    let phone = "+14045550111";
    // Another customer's job holds the only crew for the next ten days.
    sqlx::query(
        "WITH customer AS (INSERT INTO \"Customer\" DEFAULT VALUES RETURNING id),
              lead AS (INSERT INTO \"Lead\" (channel, stage, customer_id)
                       SELECT 'sms', 'booked', id FROM customer RETURNING id, customer_id),
              job AS (INSERT INTO \"Job\" (lead_id, customer_id, window_start, window_end, status)
                      SELECT id, customer_id, now(), now() + interval '10 days', 'booked' FROM lead
                      RETURNING id)
         INSERT INTO \"Booking\" (job_id, crew, window_start, window_end)
         SELECT id, 1, now(), now() + interval '10 days' FROM job",
    )
    .execute(&mut db.conn().await)
    .await
    .expect("a full schedule");
    sms(&server, "SMn1", phone, "a couch").await;
    sms(&server, "SMn2", phone, "123 Main St, Canton GA 30114").await;
    let full = texts_to(db, phone).await.pop().expect("reply");
    assert!(full.contains("fully booked"), "{full}");

    let pool = db.pool().await;
    // Still full an hour later: looked at, nothing sent.
    let age = "UPDATE \"Lead\" SET last_agent_message_at = now() - interval '2 hours',
                      \"stateMetadata\" = \"stateMetadata\" - 'found_full_at'
               WHERE phone = $1";
    sqlx::query(age)
        .bind(phone)
        .execute(&pool)
        .await
        .expect("age");
    // (The server's own worker may get there first; either way the effect is the same.)
    junkquote::jobs::fully_booked::follow_up_one(&pool)
        .await
        .expect("follow up");
    let looked: bool = sqlx::query_scalar(
        "SELECT \"stateMetadata\" ? 'found_full_at' FROM \"Lead\" WHERE phone = $1",
    )
    .bind(phone)
    .fetch_one(&pool)
    .await
    .expect("lead");
    assert!(looked, "the schedule was looked at again");
    assert_eq!(texts_to(db, phone).await.len(), 2, "nothing new to say");
    assert!(
        !junkquote::jobs::fully_booked::follow_up_one(&pool)
            .await
            .expect("follow up"),
        "not looked at again within the hour"
    );

    // The other job is cancelled: the customer hears about the windows once.
    sqlx::query("DELETE FROM \"Booking\"")
        .execute(&pool)
        .await
        .expect("cancel");
    sqlx::query(age)
        .bind(phone)
        .execute(&pool)
        .await
        .expect("age");
    junkquote::jobs::fully_booked::follow_up_one(&pool)
        .await
        .expect("follow up");
    let texts = texts_to(db, phone).await;
    assert_eq!(texts.len(), 3, "{texts:?}");
    assert!(
        texts[2].starts_with("Good news: pickup windows have opened up"),
        "{}",
        texts[2]
    );
    assert!(
        !junkquote::jobs::fully_booked::follow_up_one(&pool)
            .await
            .expect("follow up")
    );
    sms(&server, "SMn3", phone, "1").await;
    let booked = texts_to(db, phone).await.pop().expect("booked");
    assert!(booked.contains("You're booked"), "{booked}");
}
