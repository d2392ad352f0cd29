-- Indexes for the booking path, as measured by bench/booking.sh.
--
-- Best-available picks read the front-most free seats of a section: OPEN ones, and HOLDs whose
-- time has run out. The position index also held every sold seat, so as a section filled up
-- each pick walked past all of them. Two partial indexes in seat order hold only the seats that
-- can be free.
CREATE INDEX seats_open_by_position ON seats (event_id, section_no, row_index, number)
    WHERE state = 'OPEN';
CREATE INDEX seats_held_by_position ON seats (event_id, section_no, row_index, number)
    WHERE state = 'HOLD';
-- A seat changes state three times per sale, and every index on it is written each time. Seats
-- of a booking are found through booking_seats and the primary key, seat maps sort in memory,
-- and nothing looks holds up by expiry alone (the sweeper goes through bookings): these go.
DROP INDEX seats_by_position;
DROP INDEX seats_by_booking;
DROP INDEX seats_expiring;
-- The reconciler finds unsettled work through payments, not bookings.
DROP INDEX bookings_pending;
