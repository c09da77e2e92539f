"""Who may do what: users and their roles (:mod:`.users`), password hashing (:mod:`.passwords`), the
permission of each action (:mod:`.roles`), and when the dashboard asks for a sign-in (:mod:`.policy`)."""
