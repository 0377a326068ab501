//! A fixed linear congruential generator (Knuth's MMIX constants): tests
//! that need varied values (kill moments, random bytes) get the same ones
//! on every run, so a failure replays.

pub struct Lcg(pub u64);

impl Lcg {
    /// The next 31 random bits.
    pub fn next_u32(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }
}
