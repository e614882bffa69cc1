"""What a person looks at: the run's figures, the evaluation's figures, and index.html."""
