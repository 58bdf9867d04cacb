//! Bank business days (TARGET2 calendar: weekends, New Year, Good Friday, Easter Monday,
//! 1 May, Christmas Day and Boxing Day) and month arithmetic that never panics.

use chrono::{Datelike, Days, NaiveDate, Weekday};
use finx_domain::Date;

/// How far a scheduled payment may be pushed back at most (Good Friday to Tuesday is four).
const MAX_SHIFT: usize = 7;

/// Easter Sunday of `year` (anonymous Gregorian algorithm).
fn easter_sunday(year: i32) -> Option<Date> {
    let y = i64::from(year);
    let a = y.rem_euclid(19);
    let b = y.div_euclid(100);
    let c = y.rem_euclid(100);
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15).rem_euclid(30);
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k).rem_euclid(7);
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    NaiveDate::from_ymd_opt(year, u32::try_from(month).ok()?, u32::try_from(day).ok()?)
}

/// Whether banks book on `date`.
pub(crate) fn is_business_day(date: Date) -> bool {
    if matches!(date.weekday(), Weekday::Sat | Weekday::Sun) {
        return false;
    }
    if matches!(
        (date.month(), date.day()),
        (1, 1) | (5, 1) | (12, 25) | (12, 26)
    ) {
        return false;
    }
    let Some(easter) = easter_sunday(date.year()) else {
        return true;
    };
    easter.checked_sub_days(Days::new(2)) != Some(date)
        && easter.checked_add_days(Days::new(1)) != Some(date)
}

/// The first business day on or after `date`.
fn business_on_or_after(date: Date) -> Option<Date> {
    std::iter::successors(Some(date), |d| d.succ_opt())
        .take(MAX_SHIFT)
        .find(|d| is_business_day(*d))
}

/// The last business day on or before `date`.
fn business_on_or_before(date: Date) -> Option<Date> {
    std::iter::successors(Some(date), |d| d.pred_opt())
        .take(MAX_SHIFT)
        .find(|d| is_business_day(*d))
}

/// The month before `year`-`month`.
pub(crate) fn previous_month(year: i32, month: u32) -> (i32, u32) {
    if month <= 1 {
        (year.saturating_sub(1), 12)
    } else {
        (year, month - 1)
    }
}

/// The first day of the month of `date`.
pub(crate) fn month_start(date: Date) -> Option<Date> {
    date.with_day(1)
}

/// The last calendar day of `year`-`month`.
pub(crate) fn month_end(year: i32, month: u32) -> Option<Date> {
    let (next_year, next_month) = if month >= 12 {
        (year.checked_add(1)?, 1)
    } else {
        (year, month + 1)
    };
    NaiveDate::from_ymd_opt(next_year, next_month, 1)?.pred_opt()
}

/// The last business day of `year`-`month`: pay day, and the day month-end bookings happen.
pub(crate) fn last_business_day(year: i32, month: u32) -> Option<Date> {
    business_on_or_before(month_end(year, month)?)
}

/// Whether `date` is the day a payment due on day `day` of its month is executed: that day,
/// or the next business day when it falls on a weekend or holiday.
pub(crate) fn is_due(date: Date, day: u32) -> bool {
    NaiveDate::from_ymd_opt(date.year(), date.month(), day).and_then(business_on_or_after)
        == Some(date)
}

/// `date` moved by `days` (negative: back), if that is still a date.
pub(crate) fn shift(date: Date, days: i64) -> Option<Date> {
    let n = Days::new(days.unsigned_abs());
    if days < 0 {
        date.checked_sub_days(n)
    } else {
        date.checked_add_days(n)
    }
}

/// Every date from `from` to `to`, inclusive, in order.
pub(crate) fn dates(from: Date, to: Date) -> impl Iterator<Item = Date> {
    std::iter::successors(Some(from), |d| d.succ_opt()).take_while(move |d| *d <= to)
}

/// The quarter (1 to 4) of `date`.
pub(crate) fn quarter(date: Date) -> u32 {
    date.month().div_ceil(3)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> Date {
        NaiveDate::from_ymd_opt(y, m, day).expect("valid date")
    }

    #[test]
    fn easter_falls_on_known_dates() {
        assert_eq!(easter_sunday(2024), Some(d(2024, 3, 31)));
        assert_eq!(easter_sunday(2025), Some(d(2025, 4, 20)));
        assert_eq!(easter_sunday(2026), Some(d(2026, 4, 5)));
    }

    #[test]
    fn weekends_and_target_holidays_are_not_business_days() {
        assert!(!is_business_day(d(2026, 3, 1)), "a Sunday");
        assert!(!is_business_day(d(2026, 1, 1)));
        assert!(!is_business_day(d(2026, 4, 3)), "Good Friday");
        assert!(!is_business_day(d(2026, 4, 6)), "Easter Monday");
        assert!(is_business_day(d(2026, 4, 7)));
        assert!(is_business_day(d(2026, 3, 2)));
    }

    #[test]
    fn payments_due_on_a_holiday_or_weekend_move_to_the_next_business_day() {
        assert!(is_due(d(2026, 3, 2), 1), "1 March 2026 is a Sunday");
        assert!(!is_due(d(2026, 3, 1), 1));
        assert!(is_due(d(2026, 1, 2), 1), "New Year");
        assert!(is_due(d(2026, 4, 1), 1));
        assert_eq!(last_business_day(2026, 2), Some(d(2026, 2, 27)));
        assert_eq!(last_business_day(2026, 5), Some(d(2026, 5, 29)));
        assert_eq!(month_end(2024, 2), Some(d(2024, 2, 29)));
        assert_eq!(month_end(2025, 12), Some(d(2025, 12, 31)));
    }
}
