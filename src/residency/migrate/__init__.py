"""Moving data to where the policy wants it, and reclaiming what no one references."""
