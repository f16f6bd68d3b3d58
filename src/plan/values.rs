//! The shapes of values that reach job scripts and sbatch: each check says what is wrong in
//! words a user can act on. Values are checked as their type before rendering, so a number is a
//! number and a name is a name by the time a template sees it (rendering quotes them as well).

use std::path::Path;

use serde_json::Value as Json;

/// Longest campaign, stage or pattern name: job names, directories and Slurm's job-name field
/// stay readable and well under every limit on the way.
const MAX_NAME_LEN: usize = 64;

/// A campaign, stage or pattern name: letters, digits, `-`, `_`, `.`; not `.`/`..`, not hidden.
pub(crate) fn name_error(s: &str) -> Option<String> {
    if s.is_empty() {
        return Some("a name cannot be empty".into());
    }
    if s.len() > MAX_NAME_LEN {
        return Some(format!(
            "a name is at most {MAX_NAME_LEN} characters (this one has {})",
            s.chars().count()
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Some(format!(
            "{c:?} is not allowed: use only letters, digits, '-', '_' and '.'"
        ));
    }
    if s.starts_with('.') || s.starts_with('-') {
        return Some("a name cannot start with '.' or '-'".into());
    }
    None
}

/// The first control character of `s`, for messages.
pub(crate) fn control_char(s: &str) -> Option<char> {
    s.chars().find(|c| c.is_control())
}

pub(crate) fn control_error(s: &str) -> Option<String> {
    control_char(s).map(|c| {
        format!(
            "the value holds the control character {c:?}; newlines and control characters cannot be passed safely to a job script"
        )
    })
}

/// A Slurm partition, account, QOS or reservation (partitions may be a comma-separated list).
pub(crate) fn slurm_name_error(s: &str) -> Option<String> {
    if let Some(e) = control_error(s) {
        return Some(e);
    }
    if s.is_empty() {
        return Some("cannot be empty (leave the key out instead)".into());
    }
    if s.len() > 256 {
        return Some("longer than 256 characters".into());
    }
    s.chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ',')))
        .map(|c| {
            format!(
                "{c:?} is not allowed in a Slurm name: use letters, digits, '-', '_', '.' and ','"
            )
        })
}

/// A `--constraint` expression: features joined by `&`, `|`, `,`, with `[]`, `()`, `*N`, `!`.
pub(crate) fn constraint_error(s: &str) -> Option<String> {
    if let Some(e) = control_error(s) {
        return Some(e);
    }
    if s.is_empty() {
        return Some("cannot be empty (leave the key out instead)".into());
    }
    s.chars()
        .find(|c| {
            !(c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    '-' | '_' | '.' | ',' | '&' | '|' | '[' | ']' | '(' | ')' | '*' | '!' | ':'
                ))
        })
        .map(|c| {
            format!(
                "{c:?} is not allowed in a Slurm constraint (features with & | , [ ] ( ) * ! :)"
            )
        })
}

/// `--mem`: a whole number with an optional K/M/G/T suffix (`0` asks for all of a node's).
pub(crate) fn mem_error(s: &str) -> Option<String> {
    let digits = s.trim_end_matches(['K', 'M', 'G', 'T', 'k', 'm', 'g', 't']);
    let ok = !digits.is_empty()
        && s.len() - digits.len() <= 1
        && digits.bytes().all(|b| b.is_ascii_digit())
        && digits.parse::<u64>().is_ok();
    (!ok).then(|| {
        format!("`{s}` is not a memory size: a whole number with an optional K, M, G or T (`512G`, `0` for all)")
    })
}

/// An extra `#SBATCH` option: one option, starting with `-`, on one line.
pub(crate) fn sbatch_option_error(s: &str) -> Option<String> {
    if let Some(e) = control_error(s) {
        return Some(e);
    }
    if !s.starts_with('-') {
        return Some(format!(
            "`{s}` is not an sbatch option: each entry is one option such as `--mail-type=END`"
        ));
    }
    None
}

/// A NIC (RDMA device or netdev) name, as the kernel names them: `mlx5_0`, `ens1f0np0`, `ib0.8001`.
pub(crate) fn nic_name_error(s: &str) -> Option<String> {
    if s.is_empty() {
        return Some("a NIC name cannot be empty".into());
    }
    if s.len() > 64 {
        return Some("a NIC name is at most 64 characters".into());
    }
    s.chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
        .map(|c| {
            format!(
                "{c:?} is not allowed in a NIC name: use letters, digits, '-', '_', '.' and ':'"
            )
        })
}

/// An interface list: comma-separated netdev names (at most 15 characters, the kernel's
/// limit). With `nccl` it may start with NCCL_SOCKET_IFNAME's `^` (exclude) and then `=`
/// (exact names), and the names may be prefixes.
pub(crate) fn ifname_list_error(s: &str, nccl: bool) -> Option<String> {
    let mut names = s;
    if nccl {
        names = names.strip_prefix('^').unwrap_or(names);
        names = names.strip_prefix('=').unwrap_or(names);
    }
    if names.is_empty() {
        return Some("name at least one interface".into());
    }
    for name in names.split(',') {
        if name.is_empty() {
            return Some(format!("{s:?} has an empty name between commas"));
        }
        if let Some(c) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
        {
            return Some(format!(
                "{c:?} is not allowed in an interface name: use letters, digits, '-', '_', '.' and ':'{}",
                if nccl {
                    " (a leading '^' excludes, then '=' makes names exact)"
                } else {
                    ""
                }
            ));
        }
        if name.len() > 15 {
            return Some(format!(
                "{name:?} is longer than an interface name can be (15 characters)"
            ));
        }
    }
    None
}

/// A Slurm hostlist expression (`hgx-[0001-0008],login1`).
pub(crate) fn hostlist_error(s: &str) -> Option<String> {
    s.chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ',' | '[' | ']')))
        .map(|c| format!("{c:?} is not allowed in a hostlist (`node-[01-08],login1`)"))
}

/// An MPI plugin name for `srun --mpi=` (`pmix`, `pmix_v4`, `pmi2`, `none`).
pub(crate) fn mpi_error(s: &str) -> Option<String> {
    let ok = !s.is_empty()
        && s.len() <= 32
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
    (!ok).then(|| format!("`{s}` is not an MPI plugin name (`pmix`, `pmix_v4`, `pmi2`, `none`)"))
}

/// A byte size as nccl-tests takes it (`-b`/`-e`): a number with an optional K/M/G suffix.
pub(crate) fn byte_size_error(s: &str) -> Option<String> {
    let digits = s.trim_end_matches(['K', 'M', 'G', 'T', 'k', 'm', 'g', 't', 'B', 'b']);
    let ok = !digits.is_empty()
        && s.len() - digits.len() <= 2
        && digits.bytes().all(|b| b.is_ascii_digit())
        && digits.parse::<u64>().is_ok();
    (!ok).then(|| format!("`{s}` is not a byte size: a whole number with an optional K, M or G"))
}

pub(crate) fn toml_to_json(v: &toml::Value) -> Json {
    match v {
        toml::Value::String(s) => Json::String(s.clone()),
        toml::Value::Integer(i) => Json::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(Json::Number)
            .unwrap_or(Json::Null),
        toml::Value::Boolean(b) => Json::Bool(*b),
        toml::Value::Datetime(d) => Json::String(d.to_string()),
        toml::Value::Array(a) => Json::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => Json::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}

/// Parses an sbatch time limit (`M`, `M:S`, `H:M:S`, `D-H`, `D-H:M`, `D-H:M:S`) into minutes,
/// rounding seconds up as Slurm does.
pub(crate) fn parse_time_limit(s: &str) -> Result<u64, String> {
    let bad = || format!("`{s}` is not a Slurm time limit (MM, HH:MM:SS or D-HH:MM:SS)");
    let too_long =
        || format!("time limit `{s}` is longer than Slurm can hold ({MAX_TIME_LIMIT_MIN} minutes)");
    // Digits only: sbatch reads the same text, so `+5` or ` 5` would mean something else there.
    let num = |x: &str| {
        if x.is_empty() || !x.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        x.parse::<u64>().map_err(|_| too_long())
    };
    let (days, rest) = match s.split_once('-') {
        Some((d, r)) => (Some(num(d)?), r),
        None => (None, s),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let terms: Vec<(u64, u64)> = match (days, parts.as_slice()) {
        (None, [m]) => vec![(num(m)?, 60)],
        (None, [m, sec]) => vec![(num(m)?, 60), (num(sec)?, 1)],
        (None, [h, m, sec]) => vec![(num(h)?, 3600), (num(m)?, 60), (num(sec)?, 1)],
        (Some(d), [h]) => vec![(d, 86400), (num(h)?, 3600)],
        (Some(d), [h, m]) => vec![(d, 86400), (num(h)?, 3600), (num(m)?, 60)],
        (Some(d), [h, m, sec]) => vec![(d, 86400), (num(h)?, 3600), (num(m)?, 60), (num(sec)?, 1)],
        _ => return Err(bad()),
    };
    let secs = terms
        .iter()
        .try_fold(0u64, |acc, &(n, unit)| {
            acc.checked_add(n.checked_mul(unit)?)
        })
        .ok_or_else(too_long)?;
    if secs == 0 {
        return Err(format!("time limit `{s}` is zero"));
    }
    let min = secs.div_ceil(60);
    if min > MAX_TIME_LIMIT_MIN {
        return Err(too_long());
    }
    Ok(min)
}

/// Slurm keeps a time limit as 32-bit minutes, the largest value meaning "infinite".
const MAX_TIME_LIMIT_MIN: u64 = u32::MAX as u64 - 1;

/// Why `name` cannot name a template: templates are looked up by a relative name inside the
/// template directories, never by a path that leaves them.
pub(crate) fn template_name_error(name: &str) -> Option<&'static str> {
    let p = Path::new(name);
    if name.is_empty() {
        Some("a template name cannot be empty")
    } else if p.is_absolute() || name.starts_with('/') || name.starts_with('\\') {
        Some("a template is named relative to the template directories, not by an absolute path")
    } else if p
        .components()
        .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        Some("a template name cannot contain `.` or `..` components")
    } else if name.chars().any(|c| c.is_control()) {
        Some("a template name cannot contain control characters")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(name_error("h200-llama2").is_none());
        assert!(name_error("v1.2").is_none());
        for bad in [".", "..", ".hidden", "-x", "a/b", "a b", "", "a\nb"] {
            assert!(name_error(bad).is_some(), "{bad:?}");
        }
        assert!(name_error(&"x".repeat(64)).is_none());
        assert!(name_error(&"x".repeat(65)).is_some());
    }

    #[test]
    fn slurm_values() {
        assert!(slurm_name_error("gpu,debug").is_none());
        assert!(slurm_name_error("gpu\ntouch /tmp/x").is_some());
        assert!(slurm_name_error("gpu;id").is_some());
        assert!(constraint_error("h200&[rack1|rack2]").is_none());
        assert!(constraint_error("h200$(id)").is_some());
        assert!(mem_error("512G").is_none());
        assert!(mem_error("0").is_none());
        for bad in ["", "G", "12GG", "-1", "1.5G", "99999999999999999999999"] {
            assert!(mem_error(bad).is_some(), "{bad:?}");
        }
        assert!(sbatch_option_error("--mail-type=END").is_none());
        assert!(sbatch_option_error("--mail-type=END\ntouch /tmp/x").is_some());
        assert!(sbatch_option_error("touch").is_some());
    }

    #[test]
    fn nic_and_hosts() {
        for ok in ["mlx5_0", "ens1f0np0", "ib0.8001", "eth0:1"] {
            assert!(nic_name_error(ok).is_none(), "{ok}");
        }
        for bad in ["mlx5_0;touch${IFS}/tmp/x", "a b", "", "x/y"] {
            assert!(nic_name_error(bad).is_some(), "{bad:?}");
        }
        assert!(hostlist_error("hgx-[0001-0008],login1").is_none());
        assert!(hostlist_error("hgx-$(id)").is_some());
        assert!(mpi_error("pmix_v4").is_none());
        assert!(mpi_error("pmix $(id)").is_some());
        assert!(byte_size_error("8G").is_none());
        assert!(byte_size_error("8").is_none());
        assert!(byte_size_error("8G;id").is_some());
    }
}
