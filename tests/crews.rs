//! More than one crew: a window stays on offer until every crew is booked in it.

mod common;

use common::TestDb;
use common::twilio::{sms, sms_server, texts_to};

#[tokio::test]
async fn two_crews_take_the_same_window_and_a_third_customer_gets_another() {
    let db = TestDb::migrated().await;
    let server = sms_server(&db, &[]);
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
        let offer = texts_to(&db, phone).await.pop().expect("windows");
        first_offers.push(
            offer
                .lines()
                .find(|l| l.starts_with("1)"))
                .expect("a first window")
                .to_owned(),
        );
        if n < 2 {
            sms(&server, &format!("SMk{n}c"), phone, "1").await;
            let booked = texts_to(&db, phone).await.pop().expect("booked");
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
