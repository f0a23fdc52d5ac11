//! Principals (DESIGN.md §10): who acts on a tenant's data and with which role. The gateway
//! authenticates people (operators, reps) and passes a principal to the services in a signed
//! service credential; the services scope every query by its tenant and record its actor.

use serde::{Deserialize, Serialize};

/// A user's role in one tenant. `owner ⊃ admin ⊃ operator ⊃ analyst`; `rep` is a sales rep
/// who sees the WeCom sidebar and only the customers they follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Admin,
    Operator,
    Analyst,
    Rep,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Owner,
        Role::Admin,
        Role::Operator,
        Role::Analyst,
        Role::Rep,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Analyst => "analyst",
            Role::Rep => "rep",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Position on the operator ladder (`None` for a rep, who is not on it).
    fn rank(self) -> Option<u8> {
        match self {
            Role::Owner => Some(4),
            Role::Admin => Some(3),
            Role::Operator => Some(2),
            Role::Analyst => Some(1),
            Role::Rep => None,
        }
    }

    /// Does this role have everything `needed` has? A rep has only what a rep needs.
    pub fn covers(self, needed: Role) -> bool {
        match (self.rank(), needed.rank()) {
            (Some(have), Some(need)) => have >= need,
            (None, None) => true,
            _ => false,
        }
    }

    /// May this role see personal identifiers (phones, e-mails) unmasked? Analysts and reps see
    /// them masked.
    pub fn sees_personal_data(self) -> bool {
        self.covers(Role::Operator)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ladder() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
            assert!(r.covers(r));
        }
        assert!(Role::Owner.covers(Role::Analyst));
        assert!(Role::Admin.covers(Role::Operator));
        assert!(!Role::Operator.covers(Role::Admin));
        assert!(!Role::Owner.covers(Role::Rep));
        assert!(!Role::Rep.covers(Role::Analyst));
        assert!(!Role::Analyst.sees_personal_data());
        assert!(Role::Operator.sees_personal_data());
    }
}
