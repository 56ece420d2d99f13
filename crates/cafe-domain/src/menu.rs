//! The menu: which drinks the café makes, in which sizes, and how long each
//! takes to brew.
//!
//! These are plain Rust types with no gRPC in them; [`crate::convert`] turns
//! them into protobuf messages. Brew times are realistic at time scale 1; a
//! `--time-scale` of 0.05 makes a 40 s latte take 2 s, which is what demos and
//! tests use.

use std::{fmt, str::FromStr, time::Duration};

/// A cup size. Larger cups take proportionally longer to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Size {
    /// A small cup: three quarters of the medium brew time.
    Small,
    /// The default cup.
    Medium,
    /// A large cup: one and a half times the medium brew time.
    Large,
}

impl Size {
    /// Every size, smallest first.
    pub const ALL: [Size; 3] = [Size::Small, Size::Medium, Size::Large];

    /// How much longer than a medium cup this size takes to brew.
    pub fn brew_factor(self) -> f64 {
        match self {
            Size::Small => 0.75,
            Size::Medium => 1.0,
            Size::Large => 1.5,
        }
    }

    /// The lower-case name used on the command line and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Size::Small => "small",
            Size::Medium => "medium",
            Size::Large => "large",
        }
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Size {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "small" | "s" => Ok(Size::Small),
            "medium" | "m" => Ok(Size::Medium),
            "large" | "l" => Ok(Size::Large),
            other => Err(format!(
                "unknown size {other:?}: use small, medium or large"
            )),
        }
    }
}

/// One drink on the menu.
#[derive(Debug, Clone, PartialEq)]
pub struct Drink {
    /// The id customers order by, e.g. `latte`.
    pub id: &'static str,
    /// The name on the board, e.g. `Caffè latte`.
    pub name: &'static str,
    /// How long a medium cup takes at time scale 1.
    pub brew_time: Duration,
    /// The sizes this drink comes in.
    pub sizes: &'static [Size],
}

impl Drink {
    /// Whether this drink is made in `size`.
    pub fn comes_in(&self, size: Size) -> bool {
        self.sizes.contains(&size)
    }

    /// How long one cup of this drink takes: the menu's brew time, times the
    /// size's factor, times the café's time scale.
    pub fn brew_time_for(&self, size: Size, scale: TimeScale) -> Duration {
        self.brew_time
            .mul_f64(size.brew_factor())
            .mul_f64(scale.get())
    }
}

/// The drinks this café makes. An espresso has no large cup.
pub static MENU: &[Drink] = &[
    Drink {
        id: "espresso",
        name: "Espresso",
        brew_time: Duration::from_secs(20),
        sizes: &[Size::Small, Size::Medium],
    },
    Drink {
        id: "americano",
        name: "Americano",
        brew_time: Duration::from_secs(30),
        sizes: &Size::ALL,
    },
    Drink {
        id: "latte",
        name: "Caffè latte",
        brew_time: Duration::from_secs(40),
        sizes: &Size::ALL,
    },
    Drink {
        id: "cappuccino",
        name: "Cappuccino",
        brew_time: Duration::from_secs(45),
        sizes: &Size::ALL,
    },
    Drink {
        id: "mocha",
        name: "Caffè mocha",
        brew_time: Duration::from_secs(60),
        sizes: &Size::ALL,
    },
    Drink {
        id: "tea",
        name: "Pot of tea",
        brew_time: Duration::from_secs(180),
        sizes: &Size::ALL,
    },
];

/// Looks a drink up by its menu id.
pub fn find(id: &str) -> Option<&'static Drink> {
    MENU.iter().find(|drink| drink.id == id)
}

/// The menu ids, comma-separated, for error messages.
pub fn ids() -> String {
    MENU.iter().map(|d| d.id).collect::<Vec<_>>().join(", ")
}

/// A multiplier on every brew time: 1.0 is real time, 0.01 is a hundred
/// times faster. Always finite and greater than zero.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct TimeScale(f64);

impl TimeScale {
    /// Real time.
    pub const REAL: TimeScale = TimeScale(1.0);

    /// A time scale, if `factor` is finite and greater than zero.
    pub fn new(factor: f64) -> Option<Self> {
        (factor.is_finite() && factor > 0.0).then_some(TimeScale(factor))
    }

    /// The multiplier.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl Default for TimeScale {
    fn default() -> Self {
        TimeScale::REAL
    }
}

impl fmt::Display for TimeScale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for TimeScale {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse::<f64>()
            .ok()
            .and_then(TimeScale::new)
            .ok_or_else(|| {
                format!("{s:?} is not a time scale: use a number greater than 0, e.g. 0.05")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn menu_ids_are_unique_and_every_drink_comes_in_medium() {
        for (i, drink) in MENU.iter().enumerate() {
            assert!(
                MENU[i + 1..].iter().all(|d| d.id != drink.id),
                "{} twice",
                drink.id
            );
            assert!(drink.comes_in(Size::Medium), "{} has no medium", drink.id);
        }
    }

    #[test]
    fn brew_time_scales_with_size_and_time_scale() {
        let latte = find("latte").unwrap();
        let scale = TimeScale::new(0.5).unwrap();
        assert_eq!(
            latte.brew_time_for(Size::Medium, scale),
            Duration::from_secs(20)
        );
        assert_eq!(
            latte.brew_time_for(Size::Large, scale),
            Duration::from_secs(30)
        );
        assert_eq!(
            latte.brew_time_for(Size::Small, TimeScale::REAL),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn time_scale_rejects_zero_negative_and_nan() {
        assert!("0".parse::<TimeScale>().is_err());
        assert!("-1".parse::<TimeScale>().is_err());
        assert!("NaN".parse::<TimeScale>().is_err());
        assert!("inf".parse::<TimeScale>().is_err());
        assert_eq!("0.05".parse::<TimeScale>().unwrap().get(), 0.05);
    }
}
