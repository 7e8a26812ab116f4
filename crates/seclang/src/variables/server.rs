//! Connection, server and time scalars; REMOTE_*, SERVER_*, UNIQUE_ID, TIME*.

use super::{scalar, scalar_owned, Item, Target, Var};
use crate::state::TxState;
use std::time::{SystemTime, UNIX_EPOCH};

pub(super) fn generate<'a>(t: &Target, st: &'a TxState, out: &mut Vec<Item<'a>>) {
    match t.var {
        Var::RemoteAddr | Var::UseragentIp => scalar(t.var, &st.remote_addr, out),
        Var::RemoteHost => scalar(t.var, &st.remote_addr, out),
        Var::RemotePort => scalar(t.var, &st.remote_port, out),
        Var::ServerAddr => scalar(t.var, &st.server_addr, out),
        Var::ServerName => scalar(t.var, &st.server_name, out),
        Var::ServerPort => scalar(t.var, &st.server_port, out),
        Var::UniqueId => scalar(t.var, &st.unique_id, out),
        Var::HighestSeverity => {
            scalar_owned(t.var, st.highest_severity.to_string().into_bytes(), out)
        }
        Var::ModsecBuild => scalar(t.var, b"020907100", out),
        Var::Duration => {
            let us = st.started.map(|s| s.elapsed().as_micros()).unwrap_or(0);
            scalar_owned(t.var, us.to_string().into_bytes(), out)
        }
        Var::Time
        | Var::TimeDay
        | Var::TimeEpoch
        | Var::TimeHour
        | Var::TimeMin
        | Var::TimeMon
        | Var::TimeSec
        | Var::TimeWday
        | Var::TimeYear => {
            let now = st.wall.unwrap_or_else(SystemTime::now);
            scalar_owned(t.var, time_value(t.var, now).into_bytes(), out)
        }
        Var::WebserverErrorLog
        | Var::SdbmDeleteError
        | Var::SessionId
        | Var::UserId
        | Var::WebAppId => {}
        _ => {}
    }
}

/// Civil date from a Unix day count (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

pub(crate) fn time_value(var: Var, now: SystemTime) -> String {
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil(days);
    let (h, mi, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    match var {
        Var::TimeEpoch => secs.to_string(),
        Var::TimeDay => d.to_string(),
        Var::TimeHour => h.to_string(),
        Var::TimeMin => mi.to_string(),
        Var::TimeSec => s.to_string(),
        Var::TimeMon => (m - 1).to_string(),
        Var::TimeYear => y.to_string(),
        Var::TimeWday => ((days + 4).rem_euclid(7)).to_string(),
        _ => format!("{y:04}{m:02}{d:02}{h:02}{mi:02}{s:02}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn time_parts() {
        // 2024-02-29 13:14:15 UTC, a Thursday.
        let t = UNIX_EPOCH + Duration::from_secs(1_709_212_455);
        assert_eq!(time_value(Var::TimeYear, t), "2024");
        assert_eq!(time_value(Var::TimeMon, t), "1");
        assert_eq!(time_value(Var::TimeDay, t), "29");
        assert_eq!(time_value(Var::TimeHour, t), "13");
        assert_eq!(time_value(Var::TimeWday, t), "4");
        assert_eq!(time_value(Var::Time, t), "20240229131415");
    }
}
