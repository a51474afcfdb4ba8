//! The toys the catalog is created with: inductees of the National Toy Hall of Fame, plus the
//! lab's own Tux, each with a price. Names with spaces and apostrophes are on purpose: they
//! exercise URL encoding end to end.

/// `(name, price)` of every toy a new catalog starts with.
pub const INITIAL_TOYS: &[(&str, f64)] = &[
    ("Tux", 25.99),
    ("Barbie", 19.99),
    ("Crayola Crayons", 4.99),
    ("Etch A Sketch", 21.50),
    ("Frisbee", 9.99),
    ("Hot Wheels", 1.99),
    ("Jack-in-the-Box", 14.25),
    ("Jump Rope", 6.75),
    ("Lego", 49.99),
    ("Marbles", 3.49),
    ("Monopoly", 29.99),
    ("Play-Doh", 7.99),
    ("Rubik's Cube", 11.99),
    ("Slinky", 5.99),
    ("Teddy Bear", 18.00),
    ("Yo-Yo", 4.25),
    ("Kite", 12.50),
    ("Rocking Horse", 89.00),
];
