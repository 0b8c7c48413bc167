//! A booked job's progress on the day, as the operator moves it: booked → en route → arrived →
//! completed, or cancelled before it is completed. The database's `JobStatus` keeps the legacy
//! values (booked, completed, cancelled); the steps in between are `JobEvent`s.

use serde::{Deserialize, Serialize};

use super::stages::JobStatus;

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Progress {
    /// Not yet confirmed.
    Tentative,
    /// On the schedule.
    Booked,
    /// The crew is on its way.
    EnRoute,
    /// The crew is there.
    Arrived,
    /// Done.
    Completed,
    /// Called off.
    Cancelled,
}

impl Progress {
    /// The name used in forms and in `JobEvent.event_type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Progress::Tentative => "tentative",
            Progress::Booked => "booked",
            Progress::EnRoute => "en_route",
            Progress::Arrived => "arrived",
            Progress::Completed => "completed",
            Progress::Cancelled => "cancelled",
        }
    }

    /// What a person reads.
    pub fn label(self) -> &'static str {
        match self {
            Progress::Tentative => "Tentative",
            Progress::Booked => "Booked",
            Progress::EnRoute => "En route",
            Progress::Arrived => "Arrived",
            Progress::Completed => "Completed",
            Progress::Cancelled => "Cancelled",
        }
    }

    /// Parses a name from [`Progress::as_str`].
    pub fn parse(name: &str) -> Option<Progress> {
        [
            Progress::Tentative,
            Progress::Booked,
            Progress::EnRoute,
            Progress::Arrived,
            Progress::Completed,
            Progress::Cancelled,
        ]
        .into_iter()
        .find(|p| p.as_str() == name)
    }

    /// A job's progress from its `JobStatus` and the latest progress event, if any.
    pub fn of(status: JobStatus, latest_step: Option<&str>) -> Progress {
        match status {
            JobStatus::Completed => Progress::Completed,
            JobStatus::Cancelled => Progress::Cancelled,
            JobStatus::Tentative => Progress::Tentative,
            JobStatus::Booked => match latest_step.and_then(Progress::parse) {
                Some(step @ (Progress::EnRoute | Progress::Arrived)) => step,
                _ => Progress::Booked,
            },
        }
    }

    /// The steps the operator may take from here, in the order they are offered.
    pub fn next(self) -> &'static [Progress] {
        match self {
            Progress::Tentative => &[Progress::Booked, Progress::Cancelled],
            Progress::Booked => &[Progress::EnRoute, Progress::Cancelled],
            Progress::EnRoute => &[Progress::Arrived, Progress::Cancelled],
            Progress::Arrived => &[Progress::Completed, Progress::Cancelled],
            Progress::Completed | Progress::Cancelled => &[],
        }
    }

    /// Whether the operator may move a job from `self` to `to`.
    pub fn allows(self, to: Progress) -> bool {
        self.next().contains(&to)
    }

    /// The `JobStatus` a job has at this step.
    pub fn status(self) -> JobStatus {
        match self {
            Progress::Tentative => JobStatus::Tentative,
            Progress::Booked | Progress::EnRoute | Progress::Arrived => JobStatus::Booked,
            Progress::Completed => JobStatus::Completed,
            Progress::Cancelled => JobStatus::Cancelled,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_goes_forward_one_step_at_a_time() {
        let mut at = Progress::of(JobStatus::Booked, None);
        assert_eq!(at, Progress::Booked);
        for step in [Progress::EnRoute, Progress::Arrived, Progress::Completed] {
            assert!(at.allows(step), "{at:?} → {step:?}");
            at = step;
        }
        assert!(Progress::Completed.next().is_empty());
        assert!(!Progress::Booked.allows(Progress::Completed));
        assert!(!Progress::Arrived.allows(Progress::EnRoute));
        assert!(Progress::EnRoute.allows(Progress::Cancelled));
    }

    #[test]
    fn progress_is_read_from_status_and_the_latest_step() {
        assert_eq!(
            Progress::of(JobStatus::Booked, Some("arrived")),
            Progress::Arrived
        );
        assert_eq!(
            Progress::of(JobStatus::Booked, Some("reminder_sent")),
            Progress::Booked
        );
        assert_eq!(
            Progress::of(JobStatus::Completed, Some("en_route")),
            Progress::Completed
        );
        assert_eq!(Progress::parse("en_route"), Some(Progress::EnRoute));
        assert_eq!(Progress::parse("nope"), None);
        assert_eq!(Progress::Arrived.status(), JobStatus::Booked);
    }
}
